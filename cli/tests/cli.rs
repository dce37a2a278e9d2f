//! The real `learnlink` binary against an in-process mock of the admin API:
//! human and `--json` output, exit codes, and that no secret is ever printed
//! (every run checks stdout and stderr for the token and the webhook secret).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use learnlink_core::backfill::BackfillStatus;
use serde_json::{Value, json};
use support::*;

const ESC: &str = "\u{1b}[";

// ---- the command line itself ------------------------------------------------------

#[test]
fn help_shows_every_command_and_the_exit_codes_but_never_the_token() {
    let dir = scratch();
    let r = run_in(dir.path(), &[("LEARNLINK_ADMIN_TOKEN", TOKEN)], &["--help"]);
    r.code(0);
    for cmd in [
        "up", "down", "tenant", "connect", "status", "config", "backfill", "import", "logs", "runs", "review", "dlq",
        "export",
    ] {
        assert!(r.stdout.contains(&format!("\n  {cmd} ")), "{cmd} missing:\n{}", r.stdout);
    }
    for code in [
        "Exit codes:",
        "  0  ok",
        "  3  not found",
        "  4  invalid input",
        "  5  unauthorized",
        "  6  conflict",
        "  7  the API is unreachable",
    ] {
        assert!(r.stdout.contains(code), "{code:?} missing:\n{}", r.stdout);
    }
    let r = run_in(dir.path(), &[("LEARNLINK_ADMIN_TOKEN", TOKEN)], &["config", "set", "--help"]);
    r.code(0);
    assert!(r.stdout.contains("--unset") && r.stdout.contains("sync.create_contacts"));
    let r = run_in(dir.path(), &[], &["backfill", "start", "--help"]);
    r.code(0);
    assert!(r.stdout.contains("--since <DATE>") && r.stdout.contains("--until <DATE>"));
    assert!(r.stdout.contains("--only-changed") && r.stdout.contains("--wait") && r.stdout.contains("--timeout"));
    let r = run_in(dir.path(), &[], &["backfill", "status", "--help"]);
    assert!(r.stdout.contains("[ID]") && r.stdout.contains("--watch"), "{}", r.stdout);
    let r = run_in(dir.path(), &[], &["export", "enrollments", "--help"]);
    assert!(r.stdout.contains("enrollment_id,learner_id,course_id") && r.stdout.contains("--output <FILE>"));
    let r = run_in(dir.path(), &[], &["dlq", "replay", "--help"]);
    assert!(r.stdout.contains("--id <MESSAGE-ID>") && r.stdout.contains("<TENANT>"), "{}", r.stdout);
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch();
    run_in(dir.path(), &[], &["tenant", "create", "x"]).code(2);
    run_in(dir.path(), &[], &["logs", "acme", "--since", "yesterday"]).code(2);
    run_in(dir.path(), &[], &["logs", "acme", "--limit", "5000"]).code(2);
    run_in(dir.path(), &[], &["config", "set", "acme", "a.b"]).code(2);
    run_in(dir.path(), &[], &["nonsense"]).code(2);
    run_in(dir.path(), &[], &["status", "--api-url", "ftp://x"]).code(2);
}

#[test]
fn every_group_talks_to_the_api() {
    let dir = scratch();
    let cases: [&[&str]; 5] = [
        &["backfill", "start", "acme", "--since", "2024-01-01"],
        &["backfill", "status", "acme"],
        &["backfill", "cancel", "acme"],
        &["export", "enrollments", "acme", "--since", "7d"],
        &["import", "preview", "acme"],
    ];
    for args in cases {
        let r = run_in(dir.path(), &[], args);
        r.code(7);
        assert!(r.stderr.starts_with("error: no learnlink API found"), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = run_in(dir.path(), &[], &["backfill", "status", "acme", "--json"]);
    r.code(7);
    assert_eq!(r.err_json()["error"]["code"], "no_api");
    // Usage: --timeout is a number of seconds, at most a week.
    run_in(dir.path(), &[], &["backfill", "status", "acme", "--watch", "--timeout", "0"]).code(2);
    run_in(dir.path(), &[], &["backfill", "status", "acme", "--watch", "--timeout", "999999999"]).code(2);
    run_in(dir.path(), &[], &["export", "enrollments", "acme"]).code(2);
}

// ---- finding the API ------------------------------------------------------------

#[test]
fn without_an_api_the_cli_says_so_and_exits_7() {
    let dir = scratch();
    let r = run_in(dir.path(), &[], &["tenant", "list"]);
    r.code(7);
    assert_eq!(r.stderr.lines().next(), Some("error: no learnlink API found: run `make up` or set LEARNLINK_API_URL"));
    let r = run_in(dir.path(), &[], &["tenant", "list", "--json"]);
    r.code(7);
    assert_eq!(r.err_json()["error"]["code"], "no_api");
    let r = run_in(dir.path(), &[("LEARNLINK_STACK_ENV", "/nonexistent/stack.env")], &["status"]);
    r.code(7);
    assert!(r.stderr.contains("/nonexistent/stack.env does not exist"));
}

#[test]
fn the_stack_env_is_found_by_walking_up_and_its_token_is_used() {
    let mock = start();
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join(".learnlink")).unwrap();
    std::fs::write(
        dir.path().join(".learnlink/stack.env"),
        format!("# written by `learnlink-local up`\nLEARNLINK_API_URL={}\nLEARNLINK_ADMIN_TOKEN={TOKEN}\n", mock.url),
    )
    .unwrap();
    let sub = dir.path().join("a/b/c");
    std::fs::create_dir_all(&sub).unwrap();
    let r = run_in(&sub, &[], &["tenant", "list"]);
    r.code(0);
    assert!(r.stdout.contains("acme") && r.stdout.contains("Acme Corp"), "{}", r.stdout);

    // Named explicitly, from anywhere.
    let other = scratch();
    let path = dir.path().join(".learnlink/stack.env");
    let r = run_in(other.path(), &[("LEARNLINK_STACK_ENV", path.to_str().unwrap())], &["status", "acme"]);
    r.code(0);

    // An --api-url elsewhere does not receive the stack's token: 401.
    let elsewhere = start();
    let r = run_in(&sub, &[], &["tenant", "list", "--api-url", &elsewhere.url]);
    r.code(5);
}

#[test]
fn a_wrong_token_is_exit_5_and_never_printed_even_when_the_server_echoes_it() {
    let mock = start();
    let dir = scratch();
    let wrong = "wrong-token-that-must-stay-secret";
    let r = run_in(dir.path(), &[("LEARNLINK_API_URL", &mock.url)], &["tenant", "list", "--token", wrong]);
    r.code(5);
    assert!(r.stderr.starts_with("error: a valid admin credential is required"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:") && r.stderr.contains("LEARNLINK_ADMIN_TOKEN"));
    assert!(!r.stderr.contains(wrong) && !r.stdout.contains(wrong), "{}", r.stderr);
    let r = run_in(
        dir.path(),
        &[("LEARNLINK_API_URL", &mock.url), ("LEARNLINK_ADMIN_TOKEN", wrong)],
        &["tenant", "list", "--json"],
    );
    r.code(5);
    assert_eq!(r.err_json()["error"]["code"], "unauthorized");
    assert!(!r.stderr.contains(wrong));
    // No token at all.
    run_in(dir.path(), &[("LEARNLINK_API_URL", &mock.url)], &["tenant", "list"]).code(5);
}

#[test]
fn an_unreachable_or_unavailable_api_is_exit_7() {
    let dir = scratch();
    let url = refused_url();
    let r = run_in(dir.path(), &[("LEARNLINK_API_URL", &url), ("LEARNLINK_ADMIN_TOKEN", TOKEN)], &["tenant", "list"]);
    r.code(7);
    assert!(r.stderr.starts_with(&format!("error: the learnlink API at {url} refused the connection")), "{}", r.stderr);
    assert!(r.stderr.contains("hint: check --api-url"));
    let r = run_in(dir.path(), &[("LEARNLINK_API_URL", &url), ("LEARNLINK_ADMIN_TOKEN", TOKEN)], &["status", "--json"]);
    r.code(7);
    assert_eq!(r.err_json()["error"]["code"], "unreachable");

    let mock = start();
    mock.add_down_tenant();
    let r = run(&mock, &["status", "down"]);
    r.code(7);
    assert!(r.stderr.starts_with("error: a store learnlink depends on failed; retry later"), "{}", r.stderr);
    let r = run(&mock, &["config", "get", "down", "--json"]);
    r.code(7);
    assert_eq!(
        r.err_json(),
        json!({"error": {"code": "unavailable", "message": "a store learnlink depends on failed; retry later"}})
    );
}

// ---- tenants ----------------------------------------------------------------------

#[test]
fn tenant_create_from_flags_stores_secrets_without_printing_them() {
    let mock = start();
    let r = run(
        &mock,
        &[
            "tenant",
            "create",
            "gamma",
            "--name",
            "Gamma GmbH",
            "--salesforce",
            "https://gamma.my.salesforce.com",
            "--client-id",
            "3MVG9gamma",
            "--source",
            "lms",
            "--webhook-secret",
            &format!("lms={WEBHOOK_SECRET}"),
        ],
    );
    r.code(0);
    assert!(r.stdout.contains("Created tenant gamma (Gamma GmbH): configuration version 1."), "{}", r.stdout);
    assert!(r.stdout.contains("Webhook secrets stored in Secrets Manager (lms: 1)."), "{}", r.stdout);
    let (v, doc) = mock.current("gamma");
    assert_eq!(v, 1);
    assert_eq!(doc["salesforce"]["environment"], json!({"my_domain": "https://gamma.my.salesforce.com"}));
    assert_eq!(doc["webhooks"]["sources"], json!([{"name": "lms", "dialect": "canonical"}]));
    assert_eq!(mock.secrets("gamma")["lms"], vec![WEBHOOK_SECRET.to_string()]);

    // Again: the tenant exists (409 → 6), with a hint.
    let r = run(&mock, &["tenant", "create", "gamma", "--name", "G", "--salesforce", "sandbox", "--client-id", "x"]);
    r.code(6);
    assert!(r.stderr.starts_with("error: a tenant named \"gamma\" exists already"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: `learnlink config import gamma <file>`"));
    let r = run(
        &mock,
        &["tenant", "create", "gamma", "--name", "G", "--salesforce", "sandbox", "--client-id", "x", "--json"],
    );
    r.code(6);
    assert_eq!(r.err_json()["error"]["code"], "tenant_exists");
}

#[test]
fn tenant_create_from_a_file_with_flags_over_it_and_json_output() {
    let mock = start();
    let dir = scratch();
    let secret_file = file(&dir, "secret.txt", &format!("{WEBHOOK_SECRET}\n"));
    let cfg = file(
        &dir,
        "delta.json",
        &json!({"name": "Old name", "salesforce": {"environment": "production", "client_id": "3MVG9delta"}, "sync": {"create_contacts": true}}).to_string(),
    );
    let r = run(
        &mock,
        &[
            "tenant",
            "create",
            "delta",
            "--config",
            cfg.to_str().unwrap(),
            "--name",
            "Delta",
            "--webhook-secret",
            &format!("hr=@{}", secret_file.display()),
            "--json",
        ],
    );
    r.code(0);
    let doc = r.json();
    assert_eq!(doc["tenant"], "delta");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["config"]["name"], "Delta");
    assert_eq!(doc["config"]["sync"]["create_contacts"], true);
    assert_eq!(doc["webhook_secrets"], json!({"hr": 1}));
    assert_eq!(mock.secrets("delta")["hr"], vec![WEBHOOK_SECRET.to_string()]);
}

#[test]
fn an_invalid_tenant_lists_every_violation_and_exits_4() {
    let mock = start();
    let dir = scratch();
    let cfg = file(
        &dir,
        "bad.json",
        &json!({"name": "", "salesforce": {"environment": "production", "client_id": "x"}, "sync": {"domain_filter": {"mode": "sometimes"}}, "webhooks": {"sources": [{"name": "lms", "dialect": "canonical"}]}}).to_string(),
    );
    let r = run(&mock, &["tenant", "create", "bad-one", "--config", cfg.to_str().unwrap()]);
    r.code(4);
    let first = r.stderr.lines().next().unwrap();
    assert!(
        first.starts_with("error: the document has ") && first.ends_with("violation(s); nothing was stored"),
        "{}",
        r.stderr
    );
    for path in ["/config/name", "/config/sync/domain_filter/mode", "/config/webhooks/sources/0/secrets"] {
        assert!(r.stderr.contains(path), "{path} missing:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("path") && r.stderr.contains("violation"), "the violations table header:\n{}", r.stderr);
    assert!(r.stderr.contains("hint: fix every violation"));
    assert!(r.stdout.is_empty());

    let r = run(&mock, &["tenant", "create", "bad-one", "--config", cfg.to_str().unwrap(), "--json"]);
    r.code(4);
    let e = r.err_json();
    assert_eq!(e["error"]["code"], "invalid_tenant");
    let paths: Vec<&str> =
        e["error"]["violations"].as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/config/name") && paths.len() >= 3, "{paths:?}");
    assert!(r.stdout.is_empty());
}

#[test]
fn tenant_list_and_show_as_tables_and_json() {
    let mock = start();
    let r = run(&mock, &["tenant", "list"]);
    r.code(0);
    let header = r.stdout.lines().find(|l| l.contains("id")).unwrap();
    for col in ["id", "name", "version", "paused", "updated"] {
        assert!(header.contains(col), "{header}");
    }
    let acme = r.stdout.lines().find(|l| l.contains("acme")).unwrap();
    assert!(
        acme.contains("Acme Corp")
            && acme.contains(" 2 ")
            && acme.contains("no")
            && acme.contains("2026-11-02 09:00:00"),
        "{acme}"
    );
    let beta = r.stdout.lines().find(|l| l.contains("beta")).unwrap();
    assert!(beta.contains("yes"), "{beta}");
    assert!(!r.stdout.contains(ESC), "no colours when stdout is not a terminal");

    let r = run(&mock, &["tenant", "list", "--json"]);
    r.code(0);
    let j = r.json();
    let ids: Vec<&str> = j["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "beta", "racy"]);

    let r = run(&mock, &["tenant", "show", "acme", "--json"]);
    r.code(0);
    assert_eq!(r.json()["version"], 2);
    run(&mock, &["tenant", "show", "nope"]).code(3);
}

// ---- configuration ----------------------------------------------------------------

#[test]
fn config_get_prints_the_document_a_version_or_one_value() {
    let mock = start();
    let r = run(&mock, &["config", "get", "acme"]);
    r.code(0);
    assert_eq!(r.json(), support::acme_v2());
    assert!(
        r.stderr.contains("# acme: configuration version 2") && r.stderr.contains("webhook secrets: lms: 1"),
        "{}",
        r.stderr
    );
    let r = run(&mock, &["config", "get", "acme", "-q"]);
    assert!(r.stderr.is_empty());

    let r = run(&mock, &["config", "get", "acme", "--version", "1", "--json"]);
    r.code(0);
    let d = r.json();
    assert_eq!(
        (d["tenant"].clone(), d["version"].clone(), d["config"].clone()),
        (json!("acme"), json!(1), support::acme_v1())
    );

    let r = run(&mock, &["config", "get", "acme", "--path", "sync.create_contacts"]);
    r.code(0);
    assert_eq!(r.stdout, "false\n");
    let r = run(&mock, &["config", "get", "acme", "--path", "/name"]);
    assert_eq!(r.stdout, "Acme Corp\n");
    let r = run(&mock, &["config", "get", "acme", "--path", "/name", "--json"]);
    assert_eq!(r.stdout, "\"Acme Corp\"\n");
    let r = run(&mock, &["config", "get", "acme", "--path", "webhooks.sources[0]"]);
    assert_eq!(r.json(), json!({"name": "lms", "dialect": "canonical"}));

    let r = run(&mock, &["config", "get", "acme", "--path", "sync.nothing_here"]);
    r.code(3);
    assert!(r.stderr.starts_with("error: acme's configuration (version 2) has nothing at /sync/nothing_here"));
    let r = run(&mock, &["config", "get", "acme", "--version", "9"]);
    r.code(3);
    assert!(r.stderr.starts_with("error: tenant \"acme\" has no configuration version 9"), "{}", r.stderr);
    let r = run(&mock, &["config", "get", "nope", "--json"]);
    r.code(3);
    assert_eq!(r.err_json()["error"]["code"], "unknown_tenant");
    assert!(r.stdout.is_empty());
    run(&mock, &["config", "get", "acme", "--path", "a..b"]).code(4);
}

#[test]
fn config_set_puts_with_if_match_and_prints_what_changed() {
    let mock = start();
    let r = run(&mock, &["config", "set", "acme", "sync.create_contacts", "true"]);
    r.code(0);
    assert!(r.stdout.contains("~ /sync/create_contacts: false → true"), "{}", r.stdout);
    assert!(r.stdout.contains("acme: configuration version 3 (was 2)."), "{}", r.stdout);
    assert!(mock.log().iter().any(|l| l == "PUT /admin/tenants/acme/config [if-match: 2]"), "{:?}", mock.log());
    assert_eq!(mock.current("acme").1["sync"]["create_contacts"], true);

    // The same value again: nothing is stored.
    let puts = mock.log().iter().filter(|l| l.starts_with("PUT")).count();
    let r = run(&mock, &["config", "set", "acme", "/sync/create_contacts", "true"]);
    r.code(0);
    assert!(r.stdout.contains("No change: /sync/create_contacts is already true (version 3)."), "{}", r.stdout);
    assert_eq!(mock.log().iter().filter(|l| l.starts_with("PUT")).count(), puts);

    // Text, JSON values, array elements, unset; --json prints the API's document.
    run(&mock, &["config", "set", "acme", "import.schedule", "rate(2 hours)"]).code(0);
    assert_eq!(mock.current("acme").1["import"]["schedule"], "rate(2 hours)");
    let r = run(
        &mock,
        &["config", "set", "acme", "sync.domain_filter", r#"{"mode":"allow","domains":["acme.com"]}"#, "--json"],
    );
    r.code(0);
    assert_eq!(r.json()["config"]["sync"]["domain_filter"]["domains"], json!(["acme.com"]));
    assert_eq!(r.json()["version"], 5);
    run(&mock, &["config", "set", "acme", "sync.domain_filter.domains[1]", "example.org"]).code(0);
    assert_eq!(mock.current("acme").1["sync"]["domain_filter"]["domains"], json!(["acme.com", "example.org"]));
    let r = run(&mock, &["config", "set", "acme", "import", "--unset"]);
    r.code(0);
    assert!(r.stdout.contains("- /import (was {\"schedule\":\"rate(2 hours)\"})"), "{}", r.stdout);
    assert!(mock.current("acme").1.get("import").is_none());
    let r = run(&mock, &["config", "set", "acme", "import", "--unset"]);
    r.code(3);
    assert!(r.stderr.starts_with("error: nothing is set at /import"));

    // An invalid value: the API's 422 with its violations.
    let r = run(&mock, &["config", "set", "acme", "sync.create_contacts", "maybe"]);
    r.code(4);
    assert!(r.stderr.contains("/sync/create_contacts"), "{}", r.stderr);
    // A path that cannot be set.
    let r = run(&mock, &["config", "set", "acme", "name.first", "x"]);
    r.code(4);
    assert!(r.stderr.contains("/name is a string"));
}

#[test]
fn config_set_on_a_configuration_changed_meanwhile_is_a_conflict() {
    let mock = start();
    let r = run(&mock, &["config", "set", "racy", "name", "Racy 2"]);
    r.code(6);
    assert!(r.stderr.starts_with("error: the configuration of \"racy\" changed: you edited version 1"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: someone else changed racy's configuration since version 1"));
    let r = run(&mock, &["config", "set", "racy", "name", "Racy 2", "--json"]);
    r.code(6);
    assert_eq!(r.err_json()["error"]["code"], "version_conflict");
}

#[test]
fn config_validate_accepts_a_good_file_and_lists_the_violations_of_a_bad_one() {
    let mock = start();
    let dir = scratch();
    let good = file(&dir, "good.json", &support::acme_v2().to_string());
    let r = run(&mock, &["config", "validate", "acme", good.to_str().unwrap()]);
    r.code(0);
    assert!(r.stdout.contains("is a valid configuration for acme"));
    let r = run(&mock, &["config", "validate", "acme", good.to_str().unwrap(), "--json"]);
    assert_eq!(r.json(), json!({"valid": true}));

    let bad =
        file(&dir, "bad.json", &json!({"name": "Acme", "salesforce": {"environment": "moon"}, "extra": 1}).to_string());
    let r = run(&mock, &["config", "validate", "acme", bad.to_str().unwrap()]);
    r.code(4);
    for p in ["/salesforce", "(document)"] {
        assert!(r.stderr.contains(p), "{p}:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("hint: fix the"));
    let r = run(&mock, &["config", "validate", "acme", bad.to_str().unwrap(), "--json"]);
    r.code(4);
    assert!(r.err_json()["error"]["violations"].as_array().unwrap().len() >= 2);

    let broken = file(&dir, "broken.json", "{ not json");
    let r = run(&mock, &["config", "validate", "acme", broken.to_str().unwrap()]);
    r.code(4);
    assert!(r.stderr.contains("is not JSON"));
    run(&mock, &["config", "validate", "acme", "/nonexistent.json"]).code(4);
}

#[test]
fn config_export_and_import_round_trip_and_secrets_never_come_back() {
    let mock = start();
    let dir = scratch();
    let out = dir.path().join("acme.json");
    let r = run(&mock, &["config", "export", "acme", "-o", out.to_str().unwrap()]);
    r.code(0);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("Wrote acme's configuration (version 2)"));
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(exported, support::acme_v2());
    let r = run(&mock, &["config", "export", "acme", "--version", "1"]);
    assert_eq!(r.json(), support::acme_v1());

    // Import with a secret and a change: the diff is shown, the secret is not.
    let mut next = exported.clone();
    next["sync"]["create_contacts"] = json!(true);
    next["webhooks"]["sources"][0]["secrets"] = json!([WEBHOOK_SECRET]);
    let f = file(&dir, "next.json", &next.to_string());
    let r = run(&mock, &["config", "import", "acme", f.to_str().unwrap(), "--if-version", "2"]);
    r.code(0);
    assert!(r.stdout.contains("~ /sync/create_contacts: false → true"), "{}", r.stdout);
    assert!(r.stdout.contains("as acme's configuration version 3."), "{}", r.stdout);
    assert!(r.stdout.contains("Webhook secrets: lms: 1"));
    assert_eq!(mock.secrets("acme")["lms"], vec![WEBHOOK_SECRET.to_string()]);
    assert!(mock.current("acme").1["webhooks"]["sources"][0].get("secrets").is_none());
    let r = run(&mock, &["config", "export", "acme"]);
    assert!(!r.stdout.contains("secrets"));

    // A stale --if-version: conflict.
    let r = run(&mock, &["config", "import", "acme", f.to_str().unwrap(), "--if-version", "2"]);
    r.code(6);
    assert!(r.stderr.contains("hint: acme's configuration is no longer version 2"));
    // A document as `config get --json` prints it is accepted as well.
    let got = run(&mock, &["config", "get", "acme", "--json"]);
    let f = file(&dir, "doc.json", &got.stdout);
    let r = run(&mock, &["config", "import", "acme", f.to_str().unwrap(), "--json"]);
    r.code(0);
    assert_eq!(r.json()["version"], 4);
    run(&mock, &["config", "export", "nope"]).code(3);
}

#[test]
fn config_diff_between_versions_and_against_a_local_file() {
    let mock = start();
    let r = run(&mock, &["config", "diff", "acme"]);
    r.code(0);
    assert!(r.stdout.contains("acme: version 1 → version 2"));
    assert!(r.stdout.contains("+ /sync/matching_field = \"Email\""), "{}", r.stdout);
    assert!(r.stdout.contains("+ /import = {\"schedule\":\"rate(1 day)\"}"), "{}", r.stdout);
    let r = run(&mock, &["config", "diff", "acme", "--from", "2", "--to", "1", "--json"]);
    r.code(0);
    let d = r.json();
    assert_eq!((d["from"].clone(), d["to"].clone()), (json!(2), json!(1)));
    assert!(d["changes"].as_array().unwrap().iter().any(|c| c["op"] == "removed" && c["path"] == "/import"));
    run(&mock, &["config", "diff", "acme", "--from", "7"]).code(3);

    let dir = scratch();
    let mut local = support::acme_v2();
    local["name"] = json!("Acme Inc");
    local["webhooks"]["sources"][0]["secrets"] = json!([WEBHOOK_SECRET]);
    let f = file(&dir, "local.json", &local.to_string());
    let r = run(&mock, &["config", "diff", "acme", "--file", f.to_str().unwrap()]);
    r.code(0);
    assert!(r.stdout.contains("~ /name: \"Acme Corp\" → \"Acme Inc\""), "{}", r.stdout);
    assert_eq!(r.stdout.lines().filter(|l| l.trim_start().starts_with(['+', '-', '~'])).count(), 1, "{}", r.stdout);
    assert!(r.stderr.contains("carries webhook secrets for lms"));
    let r = run(&mock, &["config", "diff", "acme", "--file", f.to_str().unwrap(), "--from", "1", "--json"]);
    r.code(0);
    let d = r.json();
    assert_eq!(d["from"], 1);
    assert!(d["changes"].as_array().unwrap().iter().any(|c| c["path"] == "/import" && c["op"] == "added"));
    let r = run(&mock, &["config", "diff", "acme", "--file", f.to_str().unwrap(), "--to", "2"]);
    r.code(2);
}

#[test]
fn config_versions_newest_first() {
    let mock = start();
    let r = run(&mock, &["config", "versions", "acme"]);
    r.code(0);
    let v2 = r.stdout.find("2 (current)").unwrap();
    let v1 = r.stdout.find("2026-11-01 09:00:00").unwrap();
    assert!(v2 < v1, "{}", r.stdout);
    let r = run(&mock, &["config", "versions", "acme", "--json"]);
    assert_eq!(r.json()["versions"][0]["version"], 2);
}

// ---- status, logs, runs ---------------------------------------------------------

#[test]
fn status_of_one_tenant_with_colours_only_when_wanted() {
    let mock = start();
    let r = run(&mock, &["status", "acme"]);
    r.code(0);
    assert!(r.stdout.starts_with("acme  CONNECTED\n  Salesforce answers and the sync is caught up."), "{}", r.stdout);
    assert!(!r.stdout.contains(ESC));

    let dir = scratch();
    let env = [("LEARNLINK_API_URL", mock.url.as_str()), ("LEARNLINK_ADMIN_TOKEN", TOKEN), ("CLICOLOR_FORCE", "1")];
    let r = run_in(dir.path(), &env, &["status", "acme"]);
    assert!(r.stdout.contains("\u{1b}[32mCONNECTED\u{1b}[39m"), "{:?}", r.stdout);
    let r = run_in(dir.path(), &env, &["status", "racy"]);
    assert!(r.stdout.contains("\u{1b}[31mDISCONNECTED"), "{:?}", r.stdout);
    let r = run_in(dir.path(), &env, &["status", "beta"]);
    assert!(r.stdout.contains("\u{1b}[34mPAUSED"), "{:?}", r.stdout);
    let r = run_in(dir.path(), &env, &["status", "acme", "--no-color"]);
    assert!(!r.stdout.contains(ESC));
    let mut no_color = env.to_vec();
    no_color.push(("NO_COLOR", "1"));
    let r = run_in(dir.path(), &no_color, &["status", "acme"]);
    assert!(!r.stdout.contains(ESC));

    let r = run(&mock, &["status", "racy"]);
    assert!(r.stdout.contains("remedy: Run `learnlink connect` for this tenant."));
    assert!(r.stdout.contains("dead-letter queue: 2 message(s)"));
    assert!(r.stdout.contains("cause: no_token"));
    let r = run(&mock, &["status", "racy", "-q"]);
    assert_eq!(r.stdout, "DISCONNECTED\n");
    let r = run(&mock, &["status", "acme", "--json"]);
    assert_eq!(r.json()["status"], "CONNECTED");
    run(&mock, &["status", "nope"]).code(3);
}

#[test]
fn status_of_every_tenant_in_a_table() {
    let mock = start();
    let r = run(&mock, &["status"]);
    r.code(0);
    for (t, s) in [("acme", "CONNECTED"), ("beta", "PAUSED"), ("racy", "DISCONNECTED")] {
        let line = r.stdout.lines().find(|l| l.contains(t)).unwrap_or_else(|| panic!("{t}:\n{}", r.stdout));
        assert!(line.contains(s), "{line}");
    }
    let r = run(&mock, &["status", "--json"]);
    let statuses: Vec<String> =
        r.json()["statuses"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["CONNECTED", "PAUSED", "DISCONNECTED"]);

    // One tenant's status failing: the table still shows the others, and the exit code says why.
    mock.add_down_tenant();
    let r = run(&mock, &["status"]);
    r.code(7);
    assert!(
        r.stdout.contains("acme") && r.stdout.contains("error: a store learnlink depends on failed"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.starts_with("error: the status of down could not be read"), "{}", r.stderr);
}

#[test]
fn logs_one_page_every_page_filters_and_csv() {
    let mock = start();
    let r = run(&mock, &["logs", "acme"]);
    r.code(0);
    assert_eq!(r.stdout.lines().filter(|l| l.contains("enr-")).count(), 10, "{}", r.stdout);
    assert!(r.stdout.contains("LMS → SF") && r.stdout.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION: Status is invalid"));
    assert!(r.stderr.contains("More entries: add --all, or --cursor off-10"), "{}", r.stderr);

    let r = run(&mock, &["logs", "acme", "--cursor", "off-20", "--json"]);
    r.code(0);
    let page = r.json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 5);
    assert_eq!(page["next_cursor"], Value::Null);

    let r = run(&mock, &["logs", "acme", "--all", "--limit", "4", "--json"]);
    r.code(0);
    let all = r.json();
    assert_eq!(all["entries"].as_array().unwrap().len(), 25);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(mock.log().iter().filter(|l| l.starts_with("GET /admin/tenants/acme/activity")).count(), 1 + 1 + 7);

    let r = run(&mock, &["logs", "acme", "--all"]);
    r.code(0);
    assert_eq!(r.stdout.lines().filter(|l| l.contains("enr-")).count(), 25);
    assert!(r.stderr.contains("25 entries in 3 page(s)."), "{}", r.stderr);

    let r = run(&mock, &["logs", "acme", "--outcome", "failed", "--learner", "u-2", "--json"]);
    let entries = r.json()["entries"].as_array().unwrap().clone();
    assert!(!entries.is_empty() && entries.iter().all(|e| e["outcome"] == "failed" && e["learner_id"] == "u-2"));

    // Ages become RFC 3339 times for the API.
    run(&mock, &["logs", "acme", "--since", "2h", "--until", "now"]).code(0);
    let q = mock.log().into_iter().rfind(|l| l.contains("since=")).unwrap();
    assert!(q.contains("since=20") && q.contains("Z&until=20"), "{q}");
    let r = run(&mock, &["logs", "acme", "--since", "2026-11-20T11:00:00Z", "--json"]);
    assert_eq!(r.json()["entries"].as_array().unwrap().len(), 9);
    let r = run(&mock, &["logs", "acme", "--since", "1d", "--until", "2d"]);
    r.code(4);
    assert!(r.stderr.contains("--since") && r.stderr.contains("is after --until"));
    run(&mock, &["logs", "acme", "--cursor", "bogus"]).code(4);
    run(&mock, &["logs", "nope"]).code(3);
}

#[test]
fn logs_as_csv_one_page_from_the_api_or_every_page_with_the_same_header() {
    let mock = start();
    let header = "at,job,direction,object,lms_id,learner_id,salesforce_id,outcome,reason,message";
    let r = run(&mock, &["logs", "acme", "--csv"]);
    r.code(0);
    assert_eq!(r.stdout.lines().next(), Some(header));
    assert_eq!(r.stdout.lines().count(), 11);
    assert!(mock.log().iter().any(|l| l.contains("format=csv")));

    let r = run(&mock, &["logs", "acme", "--csv", "--all", "--limit", "10"]);
    r.code(0);
    assert_eq!(r.stdout.lines().next(), Some(header));
    assert_eq!(r.stdout.lines().count(), 26);
    assert!(r.stdout.contains("\"Status is invalid, \"\"Done\"\" expected\""), "{}", r.stdout);
    // Client-side CSV across pages is exactly the API's CSV of the same entries.
    let one = run(&mock, &["logs", "acme", "--csv", "--limit", "25"]);
    assert_eq!(one.stdout, r.stdout);

    let dir = scratch();
    let out = dir.path().join("week.csv");
    let r = run(&mock, &["logs", "acme", "--csv", "--all", "-o", out.to_str().unwrap()]);
    r.code(0);
    assert!(r.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 26);
}

#[test]
fn runs_in_a_table_and_as_json() {
    let mock = start();
    let r = run(&mock, &["runs", "acme", "--limit", "5"]);
    r.code(0);
    let r2 = r.stdout.lines().find(|l| l.contains("r2")).unwrap();
    for cell in ["webhook", "2026-11-20 12:00:00", "1m 05s", "12", "3"] {
        assert!(r2.contains(cell), "{cell}: {r2}");
    }
    let r = run(&mock, &["runs", "acme", "--json"]);
    assert_eq!(r.json()["runs"][1]["run_id"], "r1");
    run(&mock, &["runs", "nope"]).code(3);
}

// ---- the local stack ------------------------------------------------------------

#[test]
fn down_without_a_running_stack_says_so() {
    let dir = scratch();
    let state = dir.path().join("state");
    let r = run_in(dir.path(), &[], &["down", "--state-dir", state.to_str().unwrap()]);
    r.code(0);
    assert!(r.stdout.contains("The local stack is not running."));
    let r = run_in(dir.path(), &[], &["down"]);
    r.code(1);
    assert!(r.stderr.contains("not inside a learnlink checkout"));
}

// ---- the review queue and the dead-letter queue ----------------------------------

#[test]
fn review_list_follows_every_page_into_one_table_or_json() {
    let mock = start();
    let r = run(&mock, &["review", "list", "acme"]);
    r.code(0);
    for s in ["learner", "email", "candidates", "held", "first seen", "u-1", "pat3@acme.test", "003B00000000002AAA"] {
        assert!(r.stdout.contains(s), "{s} missing:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("2026-11-20 09:00:00"));
    assert!(r.stderr.contains("learnlink review resolve acme <learner> <contact>"), "{}", r.stderr);
    let log = mock.log();
    assert!(log.contains(&"GET /admin/tenants/acme/review?cursor=rv-2".to_string()), "{log:?}");
    let r = run(&mock, &["review", "list", "acme", "--json"]);
    r.code(0);
    let v = r.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    assert_eq!(v["items"][2]["held"], 3);
    assert_eq!(v["next_cursor"], Value::Null);
    let r = run(&mock, &["review", "list", "beta"]);
    r.code(0);
    assert!(r.stdout.contains("No learner of beta waits"), "{}", r.stdout);
    run(&mock, &["review", "list", "nobody"]).code(3);
}

#[test]
fn review_resolve_links_a_candidate_and_says_what_went_back() {
    let mock = start();
    let r = run(&mock, &["review", "resolve", "acme", "u-2", "003B00000000002AAA"]);
    r.code(0);
    assert!(r.stdout.contains("Contact 003B00000000002AAA"), "{}", r.stdout);
    assert!(r.stdout.contains("2 held record(s) went back to the sync queue"), "{}", r.stdout);
    assert_eq!(
        mock.state.lock().unwrap().resolved,
        [("acme".to_string(), "u-2".to_string(), "003B00000000002AAA".to_string())]
    );
    // Not a candidate: 422 → exit 4, the candidates named.
    let r = run(&mock, &["review", "resolve", "acme", "u-1", "003XXXXXXXXXXXXAAA"]);
    r.code(4);
    assert!(r.stderr.contains("the candidates are 003A00000000001AAA, 003B00000000001AAA"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    // Resolved already, or never there: 404 → exit 3.
    let r = run(&mock, &["review", "resolve", "acme", "u-2", "003B00000000002AAA"]);
    r.code(3);
    assert!(r.stderr.contains("learnlink review list acme"), "{}", r.stderr);
    let r = run(&mock, &["review", "resolve", "acme", "u-9", "003", "--json"]);
    r.code(3);
    assert_eq!(r.err_json()["error"]["code"], "unknown_learner");
    let r = run(&mock, &["review", "resolve", "acme", "u-3", "003A00000000003AAA", "--json"]);
    r.code(0);
    assert_eq!(r.json()["released"], 3);
}

#[test]
fn dlq_list_of_a_tenant_or_of_everyone() {
    let mock = start();
    let r = run(&mock, &["dlq", "list", "acme"]);
    r.code(0);
    for s in ["message id", "received", "event", "m1", "m3", "evt-1", "enrollment E3", "2026-11-20 11:00:00"] {
        assert!(r.stdout.contains(s), "{s} missing:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("m2") && !r.stdout.contains("m4"), "{}", r.stdout);
    assert!(r.stderr.contains("learnlink dlq replay acme"), "{}", r.stderr);
    let r = run(&mock, &["dlq", "list"]);
    r.code(0);
    assert!(
        r.stdout.contains("tenant") && r.stdout.contains("beta") && r.stdout.contains("(unreadable)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("not a learnlink job"));
    let r = run(&mock, &["dlq", "list", "acme", "--json"]);
    r.code(0);
    let v = r.json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 3);
    assert_eq!(v["messages"][0]["receive_count"], 5);
    let r = run(&mock, &["dlq", "list", "racy"]);
    r.code(0);
    assert!(r.stdout.contains("No message of racy"), "{}", r.stdout);
    run(&mock, &["dlq", "list", "nobody"]).code(3);
}

#[test]
fn dlq_replay_all_or_some_and_unknown_or_stuck_ones_are_failures() {
    let mock = start();
    let r = run(&mock, &["dlq", "replay", "acme", "--id", "m3"]);
    r.code(0);
    assert!(r.stdout.contains("Replayed 1 message(s) of acme"), "{}", r.stdout);
    // An unknown id: 404 → exit 3, nothing replayed.
    let r = run(&mock, &["dlq", "replay", "acme", "--id", "m1", "--id", "m2"]);
    r.code(3);
    assert!(r.stderr.contains("m2") && r.stderr.contains("learnlink dlq list acme"), "{}", r.stderr);
    // One the sync queue refused: exit 7, named.
    let r = run(&mock, &["dlq", "replay", "acme", "--id", "m1", "--id", "m-stuck"]);
    r.code(7);
    assert!(r.stdout.contains("Replayed 1 message(s)"), "{}", r.stdout);
    assert!(r.stderr.contains("m-stuck"), "{}", r.stderr);
    let r = run(&mock, &["dlq", "replay", "acme", "--json"]);
    r.code(0);
    assert_eq!(r.json()["replayed"], 0, "only m-stuck was left");
    let replays = mock.state.lock().unwrap().replays.clone();
    assert_eq!(replays[0], json!({"message_ids": ["m3"]}));
    assert_eq!(replays.last().unwrap(), &Value::Null, "no body: every message of the tenant");
    run(&mock, &["dlq", "replay"]).code(2);
}

// ---- backfills --------------------------------------------------------------------

const BAR_45: &str = "[#########-----------] 45.0%  shards 9/20  written 90,000  failed 12  API calls 45  ETA 2m10s";

#[test]
fn backfill_status_shows_the_newest_with_its_progress_bar() {
    let mock = start();
    let r = run(&mock, &["backfill", "status", "acme"]);
    r.code(0);
    assert!(r.stdout.starts_with(&format!("Backfill {RUNNING_ID} of acme: running\n")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("  progress     {BAR_45}\n")), "{}", r.stdout);
    assert!(r.stdout.contains("  window       2026-01-01 00:00:00 → 2026-11-01 00:00:00 UTC"), "{}", r.stdout);
    assert!(r.stdout.contains("  kill switch  engaged: the org's automations are bypassed (restores to false)"));
    assert!(
        r.stdout.contains("200,000 expected; read 90,012, created 45,000, updated 45,000, failed 12"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(ESC), "no colours off a terminal");
    let log = mock.log();
    assert_eq!(
        log[log.len() - 2..],
        [
            "GET /admin/tenants/acme/backfills?limit=1".to_string(),
            format!("GET /admin/tenants/acme/backfills/{RUNNING_ID}")
        ]
    );

    // One by id, with colours when forced; quiet is one line.
    let dir = scratch();
    let env = [("LEARNLINK_API_URL", mock.url.as_str()), ("LEARNLINK_ADMIN_TOKEN", TOKEN), ("CLICOLOR_FORCE", "1")];
    let r = run_in(dir.path(), &env, &["backfill", "status", "acme", DONE_ID]);
    r.code(0);
    assert!(r.stdout.contains(&format!("{ESC}32mcompleted{ESC}39m")), "{}", r.stdout);
    assert!(r.stdout.contains("ended 2026-11-20 09:42:00 after 10m00s"), "{}", r.stdout);
    let r = run(&mock, &["backfill", "status", "acme", "-q"]);
    r.code(0);
    assert_eq!(r.stdout, format!("running  {BAR_45}\n"));

    // --json: the API's view as it came.
    let r = run(&mock, &["backfill", "status", "acme", "--json"]);
    r.code(0);
    let v = r.json();
    assert_eq!(v["backfill"]["id"], RUNNING_ID);
    assert_eq!(v["progress"]["percent"], 45.0);
    assert_eq!(v["progress"]["eta_seconds"], 130);

    // Not found, no backfill yet, a bad id.
    let r = run(&mock, &["backfill", "status", "acme", "bf-nope"]);
    r.code(3);
    assert!(r.stderr.starts_with("error: no backfill bf-nope for this tenant"), "{}", r.stderr);
    let r = run(&mock, &["backfill", "status", "racy"]);
    r.code(3);
    assert!(r.stderr.starts_with("error: racy has no backfill yet"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: start one: learnlink backfill start racy --since <DATE>"));
    let r = run(&mock, &["backfill", "status", "racy", "--json"]);
    assert_eq!(r.code(3).err_json()["error"]["code"], "no_backfill");
    run(&mock, &["backfill", "status", "acme", "bad.id"]).code(4);
    run(&mock, &["backfill", "status", "nobody"]).code(3);
}

#[test]
fn backfill_status_watch_follows_to_the_end_and_the_exit_code_says_how_it_ended() {
    let mock = start();
    mock.script(
        "acme",
        RUNNING_ID,
        vec![
            (BackfillStatus::Running, progress(45.0, 9, 20, 90_000, 12, 45, Some(130)), None),
            (BackfillStatus::Running, progress(90.0, 18, 20, 180_000, 12, 90, Some(20)), None),
            (BackfillStatus::Completed, progress(100.0, 20, 20, 199_988, 12, 100, None), None),
        ],
    );
    let r = run(&mock, &["backfill", "status", "acme", "--watch"]);
    r.code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    // Off a terminal: a line at the start, then every 5 s, and the last state.
    assert_eq!(
        lines[0],
        format!("Backfill {RUNNING_ID} of acme, window 2026-01-01 00:00:00 → 2026-11-01 00:00:00 UTC:")
    );
    assert_eq!(lines[1], format!("running    {BAR_45}"));
    assert_eq!(
        lines[2],
        "completed  [####################] 100.0%  shards 20/20  written 199,988  failed 12  API calls 100"
    );
    assert_eq!(
        lines[3],
        format!("Backfill {RUNNING_ID} of acme completed after 10m00s: 199,988 written, 12 failed, 100 API calls.")
    );
    assert!(!r.stdout.contains('\r'));
    let reads = mock.log().iter().filter(|l| l.ends_with(RUNNING_ID)).count();
    assert_eq!(reads, 3, "{:?}", mock.log());

    // --json: the final view alone.
    let r = run(&mock, &["backfill", "status", "acme", RUNNING_ID, "--watch", "--json"]);
    r.code(0);
    assert_eq!(r.json()["backfill"]["status"], "completed");

    // A failed one exits 7 with its reason.
    mock.script(
        "beta",
        BETA_ID,
        vec![(
            BackfillStatus::Failed,
            progress(10.0, 2, 20, 20_000, 0, 10, None),
            Some("the Salesforce session was refused".into()),
        )],
    );
    let r = run(&mock, &["backfill", "status", "beta", "--watch"]);
    r.code(7);
    assert!(
        r.stderr.starts_with(&format!("error: backfill {BETA_ID} of beta failed: the Salesforce session was refused")),
        "{}",
        r.stderr
    );
    let r = run(&mock, &["backfill", "status", "beta", "--watch", "--json"]);
    r.code(7);
    assert_eq!(r.json()["backfill"]["status"], "failed");
    assert_eq!(r.err_json()["error"]["code"], "backfill_failed");
}

#[test]
fn backfill_watch_gives_up_at_the_timeout_and_the_backfill_goes_on() {
    let mock = start();
    let r = run(&mock, &["backfill", "status", "acme", "--watch", "--timeout", "1"]);
    r.code(7);
    assert!(
        r.stderr.starts_with(&format!("error: backfill {RUNNING_ID} of acme is still running after 1 s")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "hint: it goes on; follow it with: learnlink backfill status acme {RUNNING_ID} --watch"
        ))
    );
    assert!(r.stdout.contains(BAR_45));
}

#[test]
fn backfill_start_sends_the_window_and_follows_it_with_wait() {
    let mock = start();
    let r = run(
        &mock,
        &[
            "backfill",
            "start",
            "racy",
            "--since",
            "2026-01-01",
            "--until",
            "2026-11-01T12:00:00+02:00",
            "--only-changed",
        ],
    );
    r.code(0);
    assert_eq!(
        r.stdout,
        "Backfill bf-20261123T100000-new1 of racy started: 3 shard(s), 30,000 record(s) expected, window 2026-01-01 00:00:00 → 2026-11-01 10:00:00 UTC. 0 part(s) already covered are skipped.\n"
    );
    assert!(r.stderr.contains("Follow it: learnlink backfill status racy bf-20261123T100000-new1 --watch"));
    let starts = mock.state.lock().unwrap().starts.clone();
    assert_eq!(
        starts,
        [json!({"since": "2026-01-01T00:00:00Z", "until": "2026-11-01T10:00:00Z", "only_changed": true})]
    );

    // Another one while it runs: 409 naming it, exit 6.
    let r = run(&mock, &["backfill", "start", "racy", "--since", "2026-01-01"]);
    r.code(6);
    assert!(r.stderr.starts_with("error: backfill bf-20261123T100000-new1 of racy has not ended"), "{}", r.stderr);
    assert_eq!(mock.state.lock().unwrap().starts[1], json!({"since": "2026-01-01T00:00:00Z", "only_changed": false}));

    // An empty window is refused before any request.
    let before = mock.log().len();
    let r = run(&mock, &["backfill", "start", "acme", "--since", "2026-02-01", "--until", "2026-01-01"]);
    r.code(4);
    assert!(r.stderr.contains("--since (2026-02-01T00:00:00Z) must be before --until (2026-01-01T00:00:00Z)"));
    assert_eq!(mock.log().len(), before);
    run(&mock, &["backfill", "start", "nobody", "--since", "7d"]).code(3);

    // --wait follows it to the end; --json prints the start's answer.
    let mock = start();
    let r = run(&mock, &["backfill", "start", "racy", "--since", "30d", "--wait"]);
    r.code(0);
    assert!(
        r.stdout
            .contains("completed  [####################] 100.0%  shards 3/3  written 29,998  failed 2  API calls 15"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with(
            "Backfill bf-20261123T100000-new1 of racy completed after 10m00s: 29,998 written, 2 failed, 15 API calls.\n"
        ),
        "{}",
        r.stdout
    );
    let mock = start();
    let r = run(&mock, &["backfill", "start", "racy", "--since", "30d", "--json"]);
    r.code(0);
    assert_eq!(r.json()["backfill"]["status"], "running");
    assert_eq!(r.json()["progress"]["shards_total"], 3);
}

#[test]
fn backfill_cancel_picks_the_one_still_going_and_a_finished_one_is_a_conflict() {
    let mock = start();
    let r = run(&mock, &["backfill", "cancel", "acme"]);
    r.code(0);
    assert!(
        r.stdout.starts_with(&format!(
            "Backfill {RUNNING_ID} of acme cancelled: 90,000 written stay, shards not done (11 of 20) are not written.\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("[#########-----------] 45.0%  shards 9/20"), "{}", r.stdout);
    assert!(r.stderr.contains("The kill switch is still engaged"), "{}", r.stderr);
    assert!(mock.log().contains(&"GET /admin/tenants/acme/backfills?limit=20".to_string()));
    assert!(mock.log().contains(&format!("POST /admin/tenants/acme/backfills/{RUNNING_ID}/cancel")));
    assert_eq!(mock.backfill("acme", RUNNING_ID).status, BackfillStatus::Cancelled);

    // Nothing left to cancel; a finished one by id; an unknown one.
    let r = run(&mock, &["backfill", "cancel", "acme"]);
    r.code(3);
    assert!(r.stderr.starts_with("error: acme has no backfill that is still going: nothing to cancel"), "{}", r.stderr);
    let r = run(&mock, &["backfill", "cancel", "acme", DONE_ID]);
    r.code(6);
    assert!(r.stderr.starts_with(&format!("error: backfill {DONE_ID} is already completed; nothing was changed")));
    run(&mock, &["backfill", "cancel", "acme", "bf-nope"]).code(3);
    let r = run(&mock, &["backfill", "cancel", "beta", BETA_ID, "--json"]);
    r.code(0);
    assert_eq!(r.json()["backfill"]["status"], "cancelled");
    assert_eq!(r.json()["backfill"]["reason"], "cancelled by an admin");
}

// ---- exports ----------------------------------------------------------------------

#[test]
fn export_enrollments_follows_every_answer_into_one_csv() {
    let mock = start();
    let dir = scratch();
    let out = dir.path().join("enrollments.csv");
    let r = run(&mock, &["export", "enrollments", "acme", "--since", "2026-01-01", "-o", out.to_str().unwrap()]);
    r.code(0);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("Exported 12 enrollment(s) of acme updated in [2026-01-01T00:00:00Z, "), "{}", r.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with(&format!("{EXPORT_HEADER}\nE000,L1,C1,Course 0,completed,100,,")), "{text}");
    assert_eq!(text.matches("enrollment_id").count(), 1, "one header");
    let rows = learnlink_core::csv::parse_all(text.as_bytes()).unwrap();
    assert_eq!(rows.len(), 13);
    assert_eq!(rows[4][3], "Fire \"safety\",\nlevel 2");
    assert_eq!(rows[12][0], "E011");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    // Three answers over one window: the same until each time, the cursors in turn.
    let log: Vec<String> = mock.log().into_iter().filter(|l| l.contains("/exports/enrollments")).collect();
    assert_eq!(log.len(), 3, "{log:?}");
    let until = log[0].split("until=").nth(1).unwrap().split('&').next().unwrap().to_string();
    assert!(log.iter().all(|l| l.contains(&format!("until={until}"))), "{log:?}");
    assert!(!log[0].contains("cursor=") && log[1].ends_with("cursor=p1") && log[2].ends_with("cursor=p2"), "{log:?}");

    // To stdout, as it comes; with --json and a file, a summary.
    let r = run(&mock, &["export", "enrollments", "acme", "--since", "2026-01-01", "--until", "2026-11-01"]);
    r.code(0);
    assert_eq!(r.stdout, text);
    let r = run(
        &mock,
        &[
            "export",
            "enrollments",
            "acme",
            "--since",
            "2026-01-01",
            "--until",
            "2026-11-01",
            "--json",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    r.code(0);
    assert_eq!(r.json()["rows"], 12);
    assert_eq!(r.json()["until"], "2026-11-01T00:00:00Z");
}

#[test]
fn export_failures_leave_no_file_and_keep_their_exit_codes() {
    let mock = start();
    let dir = scratch();
    let out = dir.path().join("e.csv");
    let o = out.to_str().unwrap();
    // The second answer is a 503: nothing is written.
    let r = run(&mock, &["export", "enrollments", "racy", "--since", "2026-01-01", "-o", o]);
    r.code(7);
    assert!(r.stderr.starts_with("error: the LMS did not answer; retry in a moment"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, no temporary file");
    // No LMS: 409 → 6; unknown tenant → 3; an empty window → 4 before any request.
    let r = run(&mock, &["export", "enrollments", "beta", "--since", "2026-01-01", "-o", o]);
    r.code(6);
    assert!(r.stderr.contains("has no lms.base_url"));
    run(&mock, &["export", "enrollments", "nobody", "--since", "2026-01-01"]).code(3);
    let before = mock.log().len();
    run(&mock, &["export", "enrollments", "acme", "--since", "2026-12-01", "--until", "2026-11-01"]).code(4);
    assert_eq!(mock.log().len(), before);
    assert!(!out.exists());
}
