//! The admin API on the local stack: its bad-input table through the real
//! gateway and function, schemathesis against `infra/openapi.yaml`, and the
//! OpenAPI document kept identical to the configuration schema.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, root};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "whsec-admin-0123456789";

#[tokio::test]
async fn bad_input_gets_stable_codes_and_stores_nothing() {
    let env = Env::start("admin-bad-input", Options::default()).unwrap();
    env.create_tenant("acme", SECRET).await.unwrap();
    let api = &env.endpoints.api_url;

    // 401 without or with a wrong token.
    for token in [None, Some("wrong")] {
        let mut req = env.http.get(format!("{api}/admin/tenants/acme/config"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    }
    let mut invalid = env.tenant_config("acme", SECRET);
    invalid["name"] = json!("");
    invalid["sync"] = json!({"account_placement": {"rule": "default_account"}, "matching_field": "9x"});
    invalid["backfill"] = json!({"shard_size": 1});
    type Case<'a> = (&'a str, Method, &'a str, Option<Value>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("unknown tenant", Method::GET, "/admin/tenants/nobody/config", None, 404, "unknown_tenant"),
        ("unknown version", Method::GET, "/admin/tenants/acme/config?version=7", None, 404, "unknown_version"),
        ("unknown route", Method::GET, "/admin/nothing", None, 404, "not_found"),
        ("invalid config", Method::PUT, "/admin/tenants/acme/config", Some(invalid), 422, "invalid_config"),
        ("bad parameter", Method::GET, "/admin/tenants/acme/activity?outcome=great", None, 400, "invalid_parameter"),
        (
            "duplicate tenant",
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": "acme", "config": env.tenant_config("acme", SECRET)})),
            409,
            "tenant_exists",
        ),
    ];
    for (name, method, path, body, status, code) in cases {
        let (s, v) = env.admin(method, path, body).await.unwrap();
        assert_eq!(s, status, "{name}: {v}");
        assert_eq!(v["error"]["code"], code, "{name}: {v}");
    }
    // The 422 lists every violation with its JSON pointer.
    let mut invalid = env.tenant_config("acme", SECRET);
    invalid["name"] = json!("");
    invalid["sync"] = json!({"account_placement": {"rule": "default_account"}, "matching_field": "9x"});
    let (_, v) = env.admin(Method::PUT, "/admin/tenants/acme/config", Some(invalid)).await.unwrap();
    let paths: Vec<&str> =
        v["error"]["violations"].as_array().unwrap().iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/name") && paths.contains(&"/sync/matching_field"), "{v}");
    // A malformed body is a 400 naming the problem.
    let r = env
        .http
        .put(format!("{api}/admin/tenants/acme/config"))
        .bearer_auth(&env.admin_token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("not JSON"));
    // Nothing was stored: still version 1, one tenant.
    let (_, v) = env.admin(Method::GET, "/admin/tenants/acme/config/versions", None).await.unwrap();
    assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = env.admin(Method::GET, "/admin/tenants", None).await.unwrap();
    assert_eq!(v["tenants"].as_array().unwrap().len(), 1);

    // A valid change is the next version, with its diff.
    let mut good = env.tenant_config("acme", SECRET);
    good["sync"] = json!({"create_contacts": true});
    let (s, v) = env.admin(Method::PUT, "/admin/tenants/acme/config", Some(good)).await.unwrap();
    assert_eq!((s, v["version"].clone()), (200, json!(2)), "{v}");
    let (_, d) = env.admin(Method::GET, "/admin/tenants/acme/config/diff", None).await.unwrap();
    assert_eq!(d["changes"][0]["path"], "/sync");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let st = root().join(".venv/bin/st");
    assert!(st.exists(), "schemathesis is not installed: run `make setup`");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let env = Env::start("schemathesis", Options::default()).unwrap();
    rt.block_on(env.create_tenant("acme", SECRET)).unwrap();
    let out = std::process::Command::new(&st)
        .arg("--config-file")
        .arg(root().join("tests/e2e/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(root().join("infra/openapi.yaml"))
        .args(["--url", &env.endpoints.api_url])
        .args(["--header", &format!("Authorization: Bearer {}", env.admin_token)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // One worker: hypothesis trips over CPython 3.11's ast module when threaded.
        .args(["--workers", "1", "--max-examples", "20", "--seed", "20261123"])
        .args(["--report-dir", root().join("target/e2e/schemathesis-report").to_str().unwrap()])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("24/24"), "every operation is tested:\n{text}");
}

/// The OpenAPI document carries the configuration schema, generated by
/// `infra/gen-openapi.py`: it must be exactly what the validator uses.
#[test]
fn openapi_carries_the_same_configuration_schema() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("infra/openapi.yaml")).unwrap()).unwrap();
    let openapi: Value = serde_json::to_value(yaml).unwrap();
    let mut schema: Value = serde_json::from_str(learnlink_core::config::SCHEMA).unwrap();
    let defs = schema.as_object_mut().unwrap().remove("$defs").unwrap();
    schema.as_object_mut().unwrap().remove("$schema");
    schema.as_object_mut().unwrap().remove("$id");
    fn rewrite(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        let x = match (k.as_str(), x.as_str()) {
                            ("$ref", Some(r)) => json!(r.replace("#/$defs/", "#/components/schemas/TenantConfig_")),
                            _ => rewrite(x),
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(rewrite).collect()),
            other => other.clone(),
        }
    }
    let schemas = &openapi["components"]["schemas"];
    assert_eq!(schemas["TenantConfig"], rewrite(&schema), "run: python3 infra/gen-openapi.py");
    for (name, def) in defs.as_object().unwrap() {
        assert_eq!(schemas[format!("TenantConfig_{name}")], rewrite(def), "{name}: run python3 infra/gen-openapi.py");
    }
}
