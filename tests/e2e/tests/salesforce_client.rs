//! The product's Salesforce client against the Salesforce emulator (the
//! mock-server tests for edge cases live beside the client in
//! `shared/adapters`): OAuth with PKCE, rotation, REST, query paging,
//! Composite and Bulk API 2.0, limits.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_adapters::salesforce::SalesforceClient;
use learnlink_adapters::salesforce::oauth::authorize_start;
use learnlink_core::salesforce::bulk::BulkOperation;
use learnlink_core::salesforce::oauth::{AuthorizeRequest, OAuthClient};
use learnlink_core::salesforce::{RecordOutcome, SalesforceError, Session, SfRecord, TokenSet};
use learnlink_core::{Classify, ErrorClass};
use learnlink_e2e::SfEmulator;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

fn oauth_client() -> OAuthClient {
    OAuthClient { client_id: "learnlink-e2e".into(), client_secret: None }
}

async fn admin(emu: &SfEmulator, method: &str, path: &str, body: Value) -> Value {
    let http = reqwest::Client::new();
    let url = format!("{}/__emulator{path}", emu.url);
    let req = if method == "GET" { http.get(url) } else { http.post(url).json(&body) };
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// The web-server flow with PKCE, as oauth-callback will drive it.
async fn connect(emu: &SfEmulator, client: &SalesforceClient) -> TokenSet {
    learnlink_adapters::install_crypto_provider();
    let req = AuthorizeRequest {
        login_url: emu.url.clone(),
        client_id: oauth_client().client_id,
        redirect_uri: REDIRECT.into(),
        scope: Some("api refresh_token".into()),
        prompt: None,
    };
    let start = authorize_start(&req).unwrap();
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_redirect.get(&start.url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "authorize must redirect to the callback");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let callback = url::Url::parse(&location).unwrap();
    let q: std::collections::HashMap<String, String> = callback.query_pairs().into_owned().collect();
    assert!(start.state.matches(&q["state"]), "state comes back unchanged");
    let code = SecretString::from(q["code"].clone());
    client.exchange_code(&emu.url, &oauth_client(), &code, REDIRECT, start.pkce.verifier()).await.unwrap()
}

#[tokio::test]
async fn oauth_with_pkce_then_refresh_token_rotation() {
    let emu = SfEmulator::start().unwrap();
    let client = SalesforceClient::new().unwrap();
    let tokens = connect(&emu, &client).await;
    assert!(tokens.user_id.as_deref().is_some_and(|u| u.starts_with("005")), "{tokens:?}");
    assert!(tokens.org_id.as_deref().is_some_and(|o| o.starts_with("00D")), "{tokens:?}");
    let me = client.userinfo(&tokens.session()).await.unwrap();
    assert_eq!(Some(me.user_id.as_str()), tokens.user_id.as_deref());

    // Rotation: a new refresh token each time; the old one is refused and
    // its reuse revokes the whole family.
    let r1 = client.refresh_token(&emu.url, &oauth_client(), &tokens.refresh_token).await.unwrap();
    assert_ne!(r1.refresh_token.expose_secret(), tokens.refresh_token.expose_secret());
    let reuse = client.refresh_token(&emu.url, &oauth_client(), &tokens.refresh_token).await.unwrap_err();
    assert!(matches!(reuse, SalesforceError::InvalidGrant { .. }), "{reuse:?}");
    assert_eq!(reuse.class(), ErrorClass::Permanent);
    let family = client.refresh_token(&emu.url, &oauth_client(), &r1.refresh_token).await.unwrap_err();
    assert!(matches!(family, SalesforceError::InvalidGrant { .. }), "the family is revoked: {family:?}");
    let dead = client.query_records(&r1.session(), "SELECT Id FROM Account").await.unwrap_err();
    assert!(matches!(dead, SalesforceError::SessionExpired), "{dead:?}");
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_exactly_one_through() {
    let emu = SfEmulator::start().unwrap();
    admin(&emu, "POST", "/settings", json!({"oauth_processing_delay_ms": 300})).await;
    let client = SalesforceClient::new().unwrap();
    let tokens = connect(&emu, &client).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, rt) = (client.clone(), emu.url.clone(), tokens.refresh_token.clone());
            tokio::spawn(async move { client.refresh_token(&url, &oauth_client(), &rt).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.to_string().contains("already being processed"), "{e}");
                assert_eq!(e.class(), ErrorClass::Retryable, "a concurrent refresh is retryable");
            }
        }
    }
    assert_eq!(ok, 1);
}

fn contact(i: usize) -> SfRecord {
    let mut body = serde_json::Map::new();
    body.insert("attributes".into(), json!({"type": "Contact"}));
    body.insert("LMS_Learner_Id__c".into(), json!(format!("CL-{i}")));
    body.insert("LastName".into(), json!(format!("Client {i}")));
    body.insert("Email".into(), json!(if i % 1000 == 7 { "broken".to_string() } else { format!("c{i}@example.com") }));
    SfRecord {
        sobject: "Contact",
        external_id_field: "LMS_Learner_Id__c",
        external_id: format!("CL-{i}"),
        body: body.into(),
    }
}

#[tokio::test]
async fn rest_query_paging_bulk_and_limits_against_the_emulator() {
    let emu = SfEmulator::start().unwrap();
    let client = SalesforceClient::new().unwrap();
    let tokens = connect(&emu, &client).await;
    let s: Session = tokens.session();

    // REST CRUD and upsert by external id.
    let fields = |v: Value| v.as_object().cloned().unwrap();
    let id = client.create(&s, "Account", &fields(json!({"Name": "Acme"}))).await.unwrap();
    let got = client.get(&s, "Account", &id, &["Name"]).await.unwrap().unwrap();
    assert_eq!(got["Name"], "Acme");
    client.update(&s, "Account", &id, &fields(json!({"Name": "Acme Ltd"}))).await.unwrap();
    assert_eq!(client.get(&s, "Account", &id, &["Name"]).await.unwrap().unwrap()["Name"], "Acme Ltd");
    client.delete(&s, "Account", &id).await.unwrap();
    assert!(client.get(&s, "Account", &id, &["Name"]).await.unwrap().is_none());

    // Bulk API 2.0: 20,000 upserts, a few invalid, every row matched back.
    let records: Vec<SfRecord> = (0..20_000).map(contact).collect();
    let report = client.bulk_ingest(&s, BulkOperation::Upsert, records).await.unwrap();
    let (created, updated, failed) = report.counts();
    assert_eq!((created, updated, failed), (19_980, 0, 20), "{:?}", report.jobs);
    assert!(report.outcomes.iter().enumerate().all(|(i, o)| matches!(o, RecordOutcome::Failed(_)) == (i % 1000 == 7)));
    assert_eq!((report.missing_rows, report.duplicate_rows), (0, 0));

    // Query paging: every nextRecordsUrl followed.
    let rows = client.query_records(&s, "SELECT Id, LMS_Learner_Id__c FROM Contact").await.unwrap();
    assert_eq!(rows.len(), 19_980);
    let stats = admin(&emu, "GET", "/stats", Value::Null).await;
    assert!(stats["by_kind"]["query"].as_u64().unwrap() >= 10, "{stats}");
    assert!(stats["by_kind"]["bulk"].as_u64().unwrap() >= 4, "{stats}");

    // Limits: the budget reads the daily counter.
    let usage = client.latest_api_usage().unwrap();
    assert!(usage.used > 0 && usage.limit >= usage.used, "{usage:?}");
    let limits = client.limits(&s).await.unwrap();
    assert!(limits.daily_api_requests.max >= limits.daily_api_requests.remaining, "{limits:?}");
    admin(&emu, "POST", "/limits", json!({"daily_api_limit": usage.used + 2})).await;
    let mut throttled = None;
    for _ in 0..5 {
        if let Err(e) = client.query_records(&s, "SELECT Id FROM Account LIMIT 1").await {
            throttled = Some(e);
            break;
        }
    }
    let e = throttled.expect("the daily limit is enforced");
    assert_eq!(e.class(), ErrorClass::Throttled, "{e}");
    assert_eq!(e.code(), "REQUEST_LIMIT_EXCEEDED");
}
