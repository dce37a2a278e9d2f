use super::*;
use learnlink_adapters::dynamo::memory::MemoryState;
use learnlink_adapters::secrets::memory::MemorySecrets;

fn deps() -> (Deps, Arc<MemorySecrets>) {
    let secrets = Arc::new(MemorySecrets::new());
    let d = Deps {
        tenants: Arc::new(MemoryState::new()),
        secrets: secrets.clone(),
        names: SecretNames::default(),
        auth: AdminAuth::Bearer(SecretString::from("admin-token")),
    };
    (d, secrets)
}

fn req(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> ApiGatewayV2httpRequest {
    let mut ev = json!({"version": "2.0", "routeKey": "ANY /admin/{proxy+}", "rawPath": path, "headers": {},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "routeKey": "ANY /admin/{proxy+}", "stage": "$default", "timeEpoch": 0},
        "isBase64Encoded": false});
    if let Some(t) = token {
        ev["headers"]["authorization"] = json!(format!("Bearer {t}"));
    }
    if let Some(b) = body {
        ev["body"] = json!(b.to_string());
    }
    serde_json::from_value(ev).unwrap()
}

fn body(r: &ApiGatewayV2httpResponse) -> Value {
    match &r.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    }
}

fn good() -> Value {
    json!({"name": "Acme", "salesforce": "production", "salesforce_client_id": "cid",
           "sources": [{"name": "lms", "dialect": "canonical"}], "webhook_secrets": {"lms": ["0123456789abcdef"]}})
}

#[tokio::test]
async fn auth_is_required() {
    let (d, _) = deps();
    let now = OffsetDateTime::UNIX_EPOCH;
    for token in [None, Some("wrong")] {
        let r = handle(&d, &req("GET", "/admin/tenants", token, None), now).await;
        assert_eq!(r.status_code, 401);
        assert_eq!(body(&r)["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn create_read_list_without_secrets() {
    let (d, secrets) = deps();
    let now = OffsetDateTime::UNIX_EPOCH;
    let r = handle(&d, &req("PUT", "/admin/tenants/acme", Some("admin-token"), Some(good())), now).await;
    assert_eq!(r.status_code, 201, "{:?}", body(&r));
    let r = handle(&d, &req("PUT", "/admin/tenants/acme", Some("admin-token"), Some(good())), now).await;
    assert_eq!(r.status_code, 200);
    let r = handle(&d, &req("GET", "/admin/tenants/acme", Some("admin-token"), None), now).await;
    assert_eq!(body(&r)["tenant"]["name"], "Acme");
    assert!(!body(&r).to_string().contains("0123456789abcdef"));
    assert_eq!(secrets.version_count("learnlink/acme/webhooks"), 2);
    let r = handle(&d, &req("GET", "/admin/tenants", Some("admin-token"), None), now).await;
    assert_eq!(body(&r)["tenants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_lists_every_violation_and_stores_nothing() {
    let (d, secrets) = deps();
    let now = OffsetDateTime::UNIX_EPOCH;
    let bad = json!({"name": " ", "salesforce": "production", "salesforce_client_id": "",
        "sources": [{"name": "LMS!", "dialect": "canonical"}], "webhook_secrets": {"other": ["short"]}});
    let r = handle(&d, &req("PUT", "/admin/tenants/acme", Some("admin-token"), Some(bad)), now).await;
    assert_eq!(r.status_code, 422);
    let paths: Vec<String> = body(&r)["error"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect();
    for p in [
        "/name",
        "/salesforce_client_id",
        "/sources/0/name",
        "/webhook_secrets/LMS!",
        "/webhook_secrets/other",
        "/webhook_secrets/other/0",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }
    let r = handle(&d, &req("PUT", "/admin/tenants/acme", Some("admin-token"), Some(json!({"name": 3}))), now).await;
    assert_eq!(r.status_code, 422);
    assert_eq!(secrets.version_count("learnlink/acme/webhooks"), 0);
    let r = handle(&d, &req("GET", "/admin/tenants/acme", Some("admin-token"), None), now).await;
    assert_eq!(r.status_code, 404);
    let r = handle(&d, &req("GET", "/admin/nope", Some("admin-token"), None), now).await;
    assert_eq!(r.status_code, 404);
}
