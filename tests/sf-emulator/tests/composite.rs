//! Composite requests.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn upsert_sub(reference: &str, records: Vec<Value>) -> Value {
    json!({
        "method": "PATCH",
        "url": format!("/services/data/{V}/composite/sobjects/LMS_Enrollment__c/LMS_Enrollment_Id__c"),
        "referenceId": reference,
        "body": {"allOrNone": false, "records": records},
    })
}

async fn composite(emu: &Emu, token: &str, body: Value) -> (u16, Value) {
    let r = emu.client.post(emu.data("/composite")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn upserts_and_query_in_one_api_call() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(2).await;
    let body = json!({"allOrNone": false, "compositeRequest": [
        upsert_sub("batch0", vec![enrollment("E1", "L0", "Enrolled"), enrollment("E2", "L1", "Bad")]),
        upsert_sub("batch1", vec![enrollment("E3", "L1", "Completed")]),
        {"method": "GET", "url": format!("/services/data/{V}/query?q=SELECT+Id,+Status__c+FROM+LMS_Enrollment__c+ORDER+BY+Status__c"), "referenceId": "q"},
        {"method": "GET", "url": format!("/services/data/{V}/sobjects/Account/describe"), "referenceId": "nope"},
    ]});
    let (status, res) = composite(&emu, &c.access_token, body).await;
    assert_eq!(status, 200);
    let subs = res["compositeResponse"].as_array().unwrap();
    assert_eq!(subs.len(), 4);
    assert_eq!(subs[0]["referenceId"], "batch0");
    assert_eq!(subs[0]["httpStatusCode"], 200);
    assert_eq!(subs[0]["httpHeaders"], json!({}));
    assert_eq!(subs[0]["body"][0]["success"], true);
    assert_eq!(subs[0]["body"][1]["errors"][0]["statusCode"], "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_eq!(subs[1]["body"][0]["created"], true);
    assert_eq!(subs[2]["body"]["totalSize"], 2);
    assert_eq!(subs[2]["body"]["records"][0]["Status__c"], "Completed");
    assert_eq!(subs[3]["httpStatusCode"], 404);
    assert_eq!(
        subs[3]["body"],
        json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    );

    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["api_calls"], 1);
    assert_eq!(stats["by_kind"]["composite"], 1);
    assert_eq!(stats["records_written"], 2);
}

#[tokio::test]
async fn composite_limits() {
    let emu = start().await;
    let c = emu.connect().await;
    let many: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": format!("/services/data/{V}/limits"), "referenceId": format!("r{i}")}))
        .collect();
    let (status, body) = composite(&emu, &c.access_token, json!({"compositeRequest": many})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "LIMIT_EXCEEDED");

    let six: Vec<Value> = (0..6).map(|i| upsert_sub(&format!("b{i}"), vec![])).collect();
    let (status, body) = composite(&emu, &c.access_token, json!({"compositeRequest": six})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "LIMIT_EXCEEDED");

    let five: Vec<Value> = (0..5).map(|i| upsert_sub(&format!("b{i}"), vec![])).collect();
    let (status, _) = composite(&emu, &c.access_token, json!({"compositeRequest": five})).await;
    assert_eq!(status, 200);

    let (status, body) =
        composite(&emu, &c.access_token, json!({"compositeRequest": [{"method": "GET", "url": "/x"}]})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "JSON_PARSER_ERROR");
}

#[tokio::test]
async fn all_or_none_composite_rolls_back() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;
    let body = json!({"allOrNone": true, "compositeRequest": [
        upsert_sub("ok", vec![enrollment("E1", "L0", "Enrolled")]),
        {"method": "GET", "url": format!("/services/data/{V}/query?q=SELECT+Bogus+FROM+Contact"), "referenceId": "bad"},
        upsert_sub("later", vec![enrollment("E2", "L0", "Enrolled")]),
    ]});
    let (status, res) = composite(&emu, &c.access_token, body).await;
    assert_eq!(status, 200);
    let subs = res["compositeResponse"].as_array().unwrap();
    assert_eq!(subs[0]["httpStatusCode"], 400);
    assert_eq!(subs[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(subs[1]["httpStatusCode"], 400);
    assert_eq!(subs[1]["body"][0]["errorCode"], "INVALID_FIELD");
    assert_eq!(subs[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(emu.admin_get("/records/LMS_Enrollment__c").await, json!([]));
}
