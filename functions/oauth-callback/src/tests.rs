use super::*;
use learnlink_adapters::dynamo::memory::MemoryState;
use learnlink_adapters::salesforce::memory::MemorySalesforce;
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_adapters::sqs::memory::MemoryQueue;
use learnlink_core::connection::{ConnectionState, DisconnectCause, LinkStatus};
use secrecy::ExposeSecret;
use serde_json::json;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

struct World {
    state: Arc<MemoryState>,
    secrets: Arc<MemorySecrets>,
    sf: Arc<MemorySalesforce>,
    queue: Arc<MemoryQueue>,
    deps: Deps,
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn world(environment: Value) -> World {
    let state = Arc::new(MemoryState::new());
    state.seed_config(
        &acme(),
        json!({"name": "Acme", "salesforce": {"environment": environment, "client_id": "cid"}}),
        NOW,
    );
    let secrets = Arc::new(MemorySecrets::new());
    let sf = Arc::new(MemorySalesforce::new());
    let queue = Arc::new(MemoryQueue::new());
    let deps = Deps {
        configs: state.clone(),
        states: state.clone(),
        secrets: secrets.clone(),
        salesforce: sf.clone(),
        connections: state.clone(),
        parking: state.clone(),
        sync_queue: queue.clone(),
        names: SecretNames::default(),
        state_ttl: STATE_TTL,
    };
    World { state, secrets, sf, queue, deps }
}

fn req(path: &str, query: &[(&str, &str)]) -> ApiGatewayV2httpRequest {
    let mut ev = json!({"version": "2.0", "rawPath": path, "headers": {"host": "api.example.com"},
        "requestContext": {"domainName": "api.example.com", "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "t"}, "timeEpoch": 0},
        "isBase64Encoded": false});
    if !query.is_empty() {
        let qs: serde_json::Map<String, Value> = query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        ev["queryStringParameters"] = Value::Object(qs);
    }
    if let Some(t) = path.strip_prefix("/oauth/").and_then(|p| p.strip_suffix("/start")) {
        ev["pathParameters"] = json!({"tenant": t});
    }
    serde_json::from_value(ev).unwrap()
}

fn body(r: &ApiGatewayV2httpResponse) -> String {
    match &r.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

/// Start, and return the state from the redirect.
async fn begin(w: &World) -> (String, url::Url) {
    let r = handle(&w.deps, &req("/oauth/acme/start", &[]), NOW).await;
    assert_eq!(r.status_code, 302, "{}", body(&r));
    let loc = url::Url::parse(r.headers["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], "https://api.example.com/oauth/callback");
    assert!(q["state"].len() >= 22, "≥128 bits of state");
    (q["state"].clone(), loc)
}

fn nothing_stored(w: &World) {
    assert_eq!(w.secrets.version_count("learnlink/acme/salesforce"), 0);
}

#[tokio::test]
async fn the_login_host_follows_the_environment() {
    for (env, host) in [
        (json!("production"), "login.salesforce.com"),
        (json!("sandbox"), "test.salesforce.com"),
        (json!({"my_domain": "https://acme.my.salesforce.com"}), "acme.my.salesforce.com"),
    ] {
        let w = world(env);
        let (_, loc) = begin(&w).await;
        assert_eq!(loc.host_str(), Some(host));
        assert_eq!(loc.path(), "/services/oauth2/authorize");
    }
    let w = world(json!("production"));
    assert_eq!(handle(&w.deps, &req("/oauth/nobody/start", &[]), NOW).await.status_code, 404);
}

#[tokio::test]
async fn a_successful_callback_connects_and_checks_the_user() {
    let w = world(json!("production"));
    let (state, _) = begin(&w).await;
    let pending = w.state.peek_state(&state).unwrap();
    w.sf.issue_code("code-1", pending.code_verifier.expose_secret(), &pending.redirect_uri);
    let admin_user = json!({"Id": "005000000000001AAA", "Username": "int@acme", "Profile": {"Name": "System Administrator", "PermissionsModifyAllData": true}});
    w.sf.set_query_rows("User", vec![admin_user.as_object().unwrap().clone()]);
    let r = handle(&w.deps, &req("/oauth/callback", &[("state", &state), ("code", "code-1")]), NOW).await;
    assert_eq!(r.status_code, 200, "{}", body(&r));
    assert!(body(&r).contains("connected to Salesforce"));
    assert!(body(&r).contains("least privilege"));
    assert_eq!(w.secrets.version_count("learnlink/acme/salesforce"), 1);
    let c = w.state.connection(&acme()).await.unwrap().unwrap();
    assert_eq!(c.status, LinkStatus::Connected);
    assert!(c.integration_user.unwrap().admin_rights);
    // The state was single use.
    let again = handle(&w.deps, &req("/oauth/callback", &[("state", &state), ("code", "code-1")]), NOW).await;
    assert_eq!(again.status_code, 400);
}

#[tokio::test]
async fn relink_keeps_settings_records_the_gap_and_replays_parked_work() {
    let w = world(json!("production"));
    let mut c = ConnectionState::default();
    c.mark_connected(NOW - time::Duration::days(5), time::Duration::minutes(60), "g0".into());
    c.mark_disconnected(DisconnectCause::RefreshTokenRevokedOrExpired, NOW - time::Duration::days(2));
    c.revision = 1;
    w.state.put_connection(&acme(), &c, None).await.unwrap();
    let job = learnlink_core::job::encode(&learnlink_core::job::SyncJob::LmsEvent {
        tenant: acme(),
        source: "lms".into(),
        event: learnlink_core::webhook::LmsEvent {
            id: "e1".into(),
            kind: learnlink_core::webhook::EventKind::CertificationIssued,
            occurred_at: NOW,
            payload: learnlink_core::webhook::EventPayload::Certification(learnlink_core::model::Certification {
                id: "C1".into(),
                learner_id: "L1".into(),
                name: "Safety".into(),
                issued_at: None,
                expires_at: None,
                updated_at: NOW,
            }),
        },
    });
    w.state.park(&acme(), &[("lms#e1".into(), job)]).await.unwrap();
    let (state, _) = begin(&w).await;
    let p = w.state.peek_state(&state).unwrap();
    w.sf.issue_code("c2", p.code_verifier.expose_secret(), &p.redirect_uri);
    let r = handle(&w.deps, &req("/oauth/callback", &[("state", &state), ("code", "c2")]), NOW).await;
    assert_eq!(r.status_code, 200, "{}", body(&r));
    let c = w.state.connection(&acme()).await.unwrap().unwrap();
    assert_eq!(c.status, LinkStatus::Connected);
    let gap = &c.gap_backfills[0];
    assert_eq!(gap.from, NOW - time::Duration::days(2) - time::Duration::minutes(60));
    assert_eq!(gap.to, NOW);
    assert_eq!(w.queue.sent().len(), 1, "parked work replayed");
    assert_eq!(w.state.parked_count(&acme()).await.unwrap(), 0);
    assert_eq!(w.state.current_config(&acme()).await.unwrap().unwrap().version, 1, "settings untouched");
}

#[tokio::test]
async fn bad_callbacks_get_a_clear_page_and_store_nothing() {
    let w = world(json!("production"));
    let (state, _) = begin(&w).await;
    let p = w.state.peek_state(&state).unwrap();
    w.sf.issue_code("good", p.code_verifier.expose_secret(), &p.redirect_uri);
    // Missing and unknown state.
    for q in [vec![("code", "good")], vec![("state", "not-a-state"), ("code", "good")]] {
        let r = handle(&w.deps, &req("/oauth/callback", &q), NOW).await;
        assert_eq!(r.status_code, 400);
        assert!(body(&r).contains("cannot be used"));
    }
    // Expired: 11 minutes later.
    let r = handle(
        &w.deps,
        &req("/oauth/callback", &[("state", &state), ("code", "good")]),
        NOW + time::Duration::minutes(11),
    )
    .await;
    assert_eq!(r.status_code, 400);
    // ...and now used: even in time it is refused.
    let r = handle(&w.deps, &req("/oauth/callback", &[("state", &state), ("code", "good")]), NOW).await;
    assert_eq!(r.status_code, 400);
    // access_denied.
    let (state, _) = begin(&w).await;
    let r = handle(
        &w.deps,
        &req(
            "/oauth/callback",
            &[("state", &state), ("error", "access_denied"), ("error_description", "end-user denied authorization")],
        ),
        NOW,
    )
    .await;
    assert_eq!(r.status_code, 400);
    assert!(body(&r).contains("did not grant access"));
    // PKCE mismatch: the code was issued for another verifier.
    let (state, _) = begin(&w).await;
    w.sf.issue_code("pkce", "some-other-verifier", "https://api.example.com/oauth/callback");
    let r = handle(&w.deps, &req("/oauth/callback", &[("state", &state), ("code", "pkce")]), NOW).await;
    assert_eq!(r.status_code, 400);
    assert!(body(&r).contains("could not be completed"));
    nothing_stored(&w);
    assert!(w.state.connection(&acme()).await.unwrap().is_none());
    // Pages escape what they echo.
    let (state, _) = begin(&w).await;
    let r = handle(&w.deps, &req("/oauth/callback", &[("state", &state), ("error", "<script>x</script>")]), NOW).await;
    assert!(!body(&r).contains("<script>x"));
}
