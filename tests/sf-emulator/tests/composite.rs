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
        {"method": "GET", "url": format!("/services/data/{V}/sobjects/Nope__c/describe"), "referenceId": "nope"},
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

#[tokio::test]
async fn references_between_subrequests() {
    let emu = start().await;
    let c = emu.connect().await;
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"), "referenceId": "acc", "body": {"Name": "Ref Corp"}},
        {"method": "POST", "url": format!("/services/data/{V}/sobjects/Contact"), "referenceId": "con",
         "body": {"LastName": "Ref", "AccountId": "@{acc.id}", "LMS_Learner_Id__c": "L-ref"}},
        {"method": "GET", "url": format!("/services/data/{V}/sobjects/Contact/@{{con.id}}?fields=AccountId"), "referenceId": "get"},
        {"method": "GET", "url": format!("/services/data/{V}/query?q=SELECT+Id,+Account.Name+FROM+Contact+WHERE+Id+=+'@{{con.id}}'"), "referenceId": "q"},
        {"method": "PATCH", "url": format!("/services/data/{V}/sobjects/Account/@{{q.records[0].Account.attributes.url}}"), "referenceId": "bad_path"},
    ]});
    let (status, res) = composite(&emu, &c.access_token, body).await;
    assert_eq!(status, 200);
    let subs = res["compositeResponse"].as_array().unwrap();
    // The last subrequest fails (a URL as an id): all or none rolls everything back.
    assert_eq!(subs[4]["httpStatusCode"], 404, "{res}");
    assert_eq!(subs[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(emu.admin_get("/records/Account").await, json!([]));

    let body = json!({"compositeRequest": [
        {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"), "referenceId": "acc", "body": {"Name": "Ref Corp"}},
        {"method": "POST", "url": format!("/services/data/{V}/sobjects/Contact"), "referenceId": "con",
         "body": {"LastName": "Ref", "AccountId": "@{acc.id}"}},
        {"method": "GET", "url": format!("/services/data/{V}/query?q=SELECT+Id,+Account.Name+FROM+Contact+WHERE+Id+=+'@{{con.id}}'"), "referenceId": "q"},
        {"method": "PATCH", "url": format!("/services/data/{V}/sobjects/Account/@{{acc.id}}"), "referenceId": "upd", "body": {"Name": "@{q.records[0].Account.Name} 2"}},
        {"method": "GET", "url": format!("/services/data/{V}/sobjects/Account/@{{nope.id}}"), "referenceId": "dangling"},
    ]});
    let (_, res) = composite(&emu, &c.access_token, body).await;
    let subs = res["compositeResponse"].as_array().unwrap();
    assert_eq!(subs[0]["httpStatusCode"], 201);
    let acc = subs[0]["body"]["id"].as_str().unwrap();
    assert_eq!(subs[0]["httpHeaders"]["Location"], format!("/services/data/{V}/sobjects/Account/{acc}"));
    assert_eq!(subs[1]["httpStatusCode"], 201);
    assert_eq!(subs[2]["body"]["records"][0]["Account"]["Name"], "Ref Corp");
    assert_eq!(subs[3]["httpStatusCode"], 204);
    assert_eq!(subs[3]["body"], json!(null));
    assert_eq!(subs[4]["httpStatusCode"], 400);
    assert!(subs[4]["body"][0]["message"].as_str().unwrap().contains("nope.id"));
    let accounts = emu.admin_get("/records/Account").await;
    assert_eq!(accounts[0]["Name"], "Ref Corp 2");
    let contacts = emu.admin_get("/records/Contact").await;
    assert_eq!(contacts[0]["AccountId"], acc);
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["api_calls"], 2, "a composite request is one API call");
}

#[tokio::test]
async fn composite_graph() {
    let emu = start().await;
    let c = emu.connect().await;
    let body = json!({"graphs": [
        {"graphId": "g1", "compositeRequest": [
            {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Graph A"}},
            {"method": "POST", "url": format!("/services/data/{V}/sobjects/Contact"), "referenceId": "c", "body": {"LastName": "G", "AccountId": "@{a.id}"}},
        ]},
        {"graphId": "g2", "compositeRequest": [
            {"method": "POST", "url": format!("/services/data/{V}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Graph B"}},
            {"method": "POST", "url": format!("/services/data/{V}/sobjects/Contact"), "referenceId": "c", "body": {"AccountId": "@{a.id}"}},
        ]},
    ]});
    let r = emu.api("POST", "/composite/graph", &c.access_token, Some(body)).await;
    assert_eq!(r.status, 200);
    let graphs = r.body["graphs"].as_array().unwrap();
    assert_eq!(graphs[0]["graphId"], "g1");
    assert_eq!(graphs[0]["isSuccessful"], true);
    assert_eq!(graphs[0]["graphResponse"]["compositeResponse"][1]["httpStatusCode"], 201);
    assert_eq!(graphs[1]["isSuccessful"], false);
    let g2 = graphs[1]["graphResponse"]["compositeResponse"].as_array().unwrap();
    assert_eq!(g2[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(g2[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    let names: Vec<Value> =
        emu.admin_get("/records/Account").await.as_array().unwrap().iter().map(|a| a["Name"].clone()).collect();
    assert_eq!(names, vec![json!("Graph A")], "the failed graph was rolled back, the other kept");
}

#[tokio::test]
async fn composite_batch() {
    let emu = start().await;
    let c = emu.connect().await;
    let body = json!({"batchRequests": [
        {"method": "POST", "url": "v63.0/sobjects/Account", "richInput": {"Name": "Batch"}},
        {"method": "GET", "url": "v63.0/sobjects/Account/001Em0000000zzzAAA"},
        {"method": "GET", "url": "v63.0/limits"},
    ]});
    let r = emu.api("POST", "/composite/batch", &c.access_token, Some(body)).await;
    assert_eq!(r.body["hasErrors"], true);
    assert_eq!(r.body["results"][0]["statusCode"], 201);
    assert_eq!(r.body["results"][1]["statusCode"], 404);
    assert_eq!(r.body["results"][2]["statusCode"], 200);
}
