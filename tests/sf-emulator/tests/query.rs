//! SOQL queries, paging, limits and faults.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn query_shape_filters_and_order() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(5).await;
    let (status, body) = emu
        .query(&c.access_token, "SELECT Id, LastName, Email FROM Contact WHERE Email = 'ADA3@example.com' OR LMS_Learner_Id__c IN ('L1', 'L2') ORDER BY LastName DESC LIMIT 2")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalSize"], 2);
    assert_eq!(body["done"], true);
    assert!(body.get("nextRecordsUrl").is_none());
    let recs = body["records"].as_array().unwrap();
    assert_eq!(recs[0]["LastName"], "Learner3");
    assert_eq!(recs[1]["LastName"], "Learner2");
    let id = recs[0]["Id"].as_str().unwrap();
    assert_eq!(
        recs[0]["attributes"],
        json!({"type": "Contact", "url": format!("/services/data/{V}/sobjects/Contact/{id}")})
    );
    let keys: Vec<&String> = recs[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4);

    // Escapes in string literals, COUNT().
    let (_, body) = emu.query(&c.access_token, "SELECT COUNT() FROM Contact WHERE LastName != 'O\\'Brien'").await;
    assert_eq!(body, json!({"totalSize": 5, "done": true, "records": []}));

    // Parent relationship fields.
    let enr = json!({"records": [enrollment("E1", "L4", "Enrolled")]});
    emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", enr).await;
    let (_, body) = emu
        .query(&c.access_token, "SELECT LMS_Enrollment_Id__c, Contact__r.LMS_Learner_Id__c, Enrolled_At__c FROM LMS_Enrollment__c WHERE Enrolled_At__c >= 2026-05-12T10:00:00Z")
        .await;
    let r = &body["records"][0];
    assert_eq!(r["Contact__r"]["LMS_Learner_Id__c"], "L4");
    assert_eq!(r["Contact__r"]["attributes"]["type"], "Contact");
    assert_eq!(r["Enrolled_At__c"], "2026-05-12T10:00:00.000+0000");
}

#[tokio::test]
async fn query_errors() {
    let emu = start().await;
    let c = emu.connect().await;
    for (q, code) in [
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELEC Id FROM Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Email = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Nope__c = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
    ] {
        let (status, body) = emu.query(&c.access_token, q).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(body[0]["errorCode"], code, "{q}: {body}");
        assert!(body[0]["message"].is_string());
    }
}

#[tokio::test]
async fn next_records_url_paging_across_a_page_boundary() {
    let emu = start_with(sf_emulator::Config { query_page_size: 7, ..sf_emulator::Config::default() }).await;
    let c = emu.connect().await;
    emu.seed_contacts(23).await;
    let (status, first) = emu.query(&c.access_token, "SELECT Id, LMS_Learner_Id__c FROM Contact").await;
    assert_eq!(status, 200);
    assert_eq!(first["totalSize"], 23);
    assert_eq!(first["done"], false);
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    let mut pages = 1;
    loop {
        for r in page["records"].as_array().unwrap() {
            seen.push(r["LMS_Learner_Id__c"].as_str().unwrap().to_owned());
        }
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(next.starts_with(&format!("/services/data/{V}/query/0r8")), "{next}");
        assert!(next.ends_with(&format!("-{}", seen.len())), "{next}");
        let (status, p) = emu.get_path(&c.access_token, &next).await;
        assert_eq!(status, 200);
        assert_eq!(p["totalSize"], 23);
        page = p;
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(pages, 4);
    let expected: Vec<String> = (0..23).map(|i| format!("L{i}")).collect();
    assert_eq!(seen, expected);

    let (status, body) = emu.get_path(&c.access_token, &format!("/services/data/{V}/query/01gBogus-7")).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR");

    // The page size can also be changed at run time.
    emu.admin("/limits", json!({"query_page_size": 20})).await;
    let (_, body) = emu.query(&c.access_token, "SELECT Id FROM Contact").await;
    assert_eq!(body["records"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn limit_header_and_request_limit_exceeded() {
    let emu = start_with(sf_emulator::Config { daily_api_limit: 3, ..sf_emulator::Config::default() }).await;
    let c = emu.connect().await;
    for n in 1..=3 {
        let r = emu
            .client
            .get(emu.data("/query"))
            .query(&[("q", "SELECT Id FROM Contact")])
            .bearer_auth(&c.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["sforce-limit-info"].to_str().unwrap(), format!("api-usage={n}/3"));
        assert_eq!(r.headers()["content-type"].to_str().unwrap(), "application/json;charset=UTF-8");
    }
    let r = emu
        .client
        .get(emu.data("/query"))
        .query(&[("q", "SELECT Id FROM Contact")])
        .bearer_auth(&c.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    emu.admin("/limits", json!({"daily_api_limit": 100})).await;
    let (status, _) = emu.query(&c.access_token, "SELECT Id FROM Contact").await;
    assert_eq!(status, 200);
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["api_calls"], 4);
    assert_eq!(stats["by_kind"]["query"], 4);
}

#[tokio::test]
async fn injected_faults() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.admin("/faults", json!({"kind": "server_error", "count": 2})).await;
    emu.admin("/faults", json!({"kind": "request_limit_exceeded", "count": 1})).await;
    emu.admin("/faults", json!({"kind": "invalid_session", "count": 1})).await;
    let q = "SELECT Id FROM Contact";
    for _ in 0..2 {
        let (status, body) = emu.query(&c.access_token, q).await;
        assert_eq!(status, 500);
        assert_eq!(body[0]["errorCode"], "UNKNOWN_EXCEPTION");
        assert!(body[0]["message"].as_str().unwrap().starts_with("An unexpected error occurred."));
    }
    let (status, body) = emu.query(&c.access_token, q).await;
    assert_eq!(status, 403);
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    let (status, body) = emu.query(&c.access_token, q).await;
    assert_eq!(status, 401);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    let (status, _) = emu.query(&c.access_token, q).await;
    assert_eq!(status, 200);

    // Reset forgets everything, tokens included.
    emu.admin("/reset", json!({})).await;
    let (status, _) = emu.query(&c.access_token, q).await;
    assert_eq!(status, 401);
    assert_eq!(emu.admin_get("/stats").await["api_calls"], 0);
}

#[tokio::test]
async fn column_metadata_as_the_sf_cli_reads_it() {
    let emu = common::start().await;
    let c = emu.connect().await;
    let q = "SELECT Id, Name, Contact__r.LastName, Contact__r.Email, Progress__c FROM LMS_Enrollment__c";
    let url = format!("{}?q={}&columns=true", emu.data("/query"), q.replace(' ', "+"));
    let r = emu.client.get(url).bearer_auth(&c.access_token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["entityName"], "LMS_Enrollment__c");
    assert_eq!(v["idSelected"], true);
    let cols = v["columnMetadata"].as_array().unwrap();
    let names: Vec<&str> = cols.iter().map(|c| c["columnName"].as_str().unwrap()).collect();
    assert_eq!(names, ["Id", "Name", "Contact__r", "Progress__c"]);
    assert_eq!(cols[0]["apexType"], "Id");
    let join = cols[2]["joinColumns"].as_array().unwrap();
    assert_eq!(join.len(), 2);
    assert_eq!(join[1]["displayName"], "Contact__r.Email");
    assert_eq!(cols[3]["numberType"], true);
    let count = format!("{}?q=SELECT+COUNT()+FROM+Account&columns=true", emu.data("/query"));
    let v: serde_json::Value =
        emu.client.get(count).bearer_auth(&c.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["columnMetadata"][0]["aggregate"], true);
}

#[tokio::test]
async fn doubled_slashes_in_the_path_are_tolerated() {
    let emu = common::start().await;
    let c = emu.connect().await;
    let r = emu.client.get(emu.url("//services/data")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let url = format!("{}//services/data/v62.0//query?q=SELECT+Id+FROM+Account", emu.url(""));
    let r = emu.client.get(url).bearer_auth(&c.access_token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
