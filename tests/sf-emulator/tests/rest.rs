//! Single-record REST resources, describe, resources, limits, counts by kind, faults.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn crud_on_a_record() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let r = emu.api("POST", "/sobjects/Account", t, Some(json!({"Name": "Acme", "Industry": "Technology"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body, json!({"id": id, "success": true, "errors": []}));
    assert_eq!(r.header("location"), Some(format!("/services/data/{V}/sobjects/Account/{id}")));
    assert!(r.header("sforce-limit-info").unwrap().starts_with("api-usage="));

    let r = emu.api("GET", &format!("/sobjects/Account/{id}"), t, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["attributes"],
        json!({"type": "Account", "url": format!("/services/data/{V}/sobjects/Account/{id}")})
    );
    assert_eq!(r.body["Name"], "Acme");
    assert_eq!(r.body["IsDeleted"], false);
    let org = emu.admin_get("/org").await;
    assert_eq!(r.body["OwnerId"], org["identity"]["integration_user_id"], "OwnerId defaults to the writing user");
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 71, "attributes + every Account field");
    // 15-character ids work too; ?fields= selects.
    let r = emu.api("GET", &format!("/sobjects/Account/{}?fields=Name,Industry", &id[..15]), t, None).await;
    assert_eq!(r.body.as_object().unwrap().keys().collect::<Vec<_>>(), ["attributes", "Id", "Name", "Industry"]);

    let r = emu.api("PATCH", &format!("/sobjects/Account/{id}"), t, Some(json!({"Name": "Acme 2"}))).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let r = emu.api("PATCH", &format!("/sobjects/Account/{id}"), t, Some(json!({"Name": null}))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!([{"message": "Required fields are missing: [Name]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}])
    );
    let r = emu.api("PATCH", &format!("/sobjects/Account/{id}"), t, Some(json!({"Bogus__c": 1}))).await;
    assert_eq!(r.body[0]["errorCode"], "INVALID_FIELD");

    let r = emu.api("DELETE", &format!("/sobjects/Account/{id}"), t, None).await;
    assert_eq!(r.status, 204);
    let r = emu.api("DELETE", &format!("/sobjects/Account/{id}"), t, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}]));
    let r = emu.api("GET", &format!("/sobjects/Account/{id}"), t, None).await;
    assert_eq!(r.status, 404);
    let r = emu.api("GET", "/sobjects/Account/001Em0000000zzzAAA", t, None).await;
    assert_eq!(r.body, json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]));

    // queryAll sees the deleted record, query does not.
    let (_, q) = emu.query(t, "SELECT Id FROM Account").await;
    assert_eq!(q["totalSize"], 0);
    let r = emu.api("GET", "/queryAll?q=SELECT+Id,+IsDeleted+FROM+Account", t, None).await;
    assert_eq!(r.body["totalSize"], 1);
    assert_eq!(r.body["records"][0]["IsDeleted"], true);

    // Creating without a required field; a read-only field; a bad picklist value on
    // a restricted picklist.
    let r = emu.api("POST", "/sobjects/Contact", t, Some(json!({"FirstName": "No"}))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    let r = emu.api("POST", "/sobjects/Contact", t, Some(json!({"LastName": "X", "IsEmailBounced": true}))).await;
    assert_eq!(r.body[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");
    let r = emu.api("POST", "/sobjects/Nope__c", t, Some(json!({}))).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn upsert_by_external_id_201_200_300_and_get() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let r = emu
        .api(
            "PATCH",
            "/sobjects/Contact/LMS_Learner_Id__c/L-1",
            t,
            Some(json!({"LastName": "Lovelace", "Email": "ada@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["created"], true);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("/services/data/{V}/sobjects/Contact/{id}")));
    let r = emu.api("PATCH", "/sobjects/Contact/LMS_Learner_Id__c/L-1", t, Some(json!({"FirstName": "Ada"}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"id": id, "success": true, "errors": [], "created": false}));
    let r = emu.api("GET", "/sobjects/Contact/LMS_Learner_Id__c/L-1", t, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["Name"], "Ada Lovelace");
    let r = emu.api("GET", "/sobjects/Contact/LMS_Learner_Id__c/L-404", t, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body[0]["errorCode"], "NOT_FOUND");
    let r = emu.api("GET", "/sobjects/Contact/LastName/x", t, None).await;
    assert_eq!(r.status, 404, "not an external id field");

    // Email is an idLookup field: two contacts with one email → 300 with their URLs.
    emu.seed(
        "Contact",
        json!([{"LastName": "A", "Email": "twin@example.com"}, {"LastName": "B", "Email": "Twin@Example.com"}]),
    )
    .await;
    let r = emu.api("PATCH", "/sobjects/Contact/Email/twin@example.com", t, Some(json!({"Title": "x"}))).await;
    assert_eq!(r.status, 300);
    let urls = r.body.as_array().unwrap();
    assert_eq!(urls.len(), 2);
    assert!(urls[0].as_str().unwrap().starts_with(&format!("/services/data/{V}/sobjects/Contact/003")));
    let r = emu.api("GET", "/sobjects/Contact/Email/twin@example.com", t, None).await;
    assert_eq!(r.status, 300);
    // updateOnly never creates.
    let r = emu
        .api("PATCH", "/sobjects/Contact/LMS_Learner_Id__c/L-2?updateOnly=true", t, Some(json!({"LastName": "Z"})))
        .await;
    assert_eq!(r.status, 404);
    // Delete by external id.
    let r = emu.api("DELETE", "/sobjects/Contact/LMS_Learner_Id__c/L-1", t, None).await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn describe_and_resources() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let r = emu.api("GET", "/", t, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["sobjects"], format!("/services/data/{V}/sobjects"));
    assert_eq!(r.body["jobs"], format!("/services/data/{V}/jobs"));
    let r = emu.api("GET", "/sobjects", t, None).await;
    assert_eq!(r.body["maxBatchSize"], 200);
    let names: Vec<&str> = r.body["sobjects"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    for n in [
        "Account",
        "Contact",
        "User",
        "Profile",
        "PermissionSet",
        "PermissionSetAssignment",
        "Organization",
        "Case",
        "Opportunity",
        "LMS_Enrollment__c",
        "LMS_Certification__c",
        "LMS_Sync_Settings__c",
    ] {
        assert!(names.contains(&n), "{n} in the global describe");
    }
    let r = emu.api("GET", "/sobjects/LMS_Enrollment__c/describe", t, None).await;
    assert_eq!(r.status, 200);
    let d = &r.body;
    assert_eq!(d["name"], "LMS_Enrollment__c");
    assert_eq!(d["label"], "LMS Enrollment");
    assert_eq!(d["custom"], true);
    assert_eq!(d["urls"]["describe"], format!("/services/data/{V}/sobjects/LMS_Enrollment__c/describe"));
    let field = |n: &str| d["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).cloned().unwrap();
    let ext = field("LMS_Enrollment_Id__c");
    assert_eq!(
        (ext["type"].as_str(), ext["externalId"].as_bool(), ext["unique"].as_bool(), ext["length"].as_u64()),
        (Some("string"), Some(true), Some(true), Some(255))
    );
    let contact = field("Contact__c");
    assert_eq!(contact["type"], "reference");
    assert_eq!(contact["referenceTo"], json!(["Contact"]));
    assert_eq!(contact["relationshipName"], "Contact__r");
    let status = field("Status__c");
    assert_eq!(status["restrictedPicklist"], true);
    let values: Vec<&str> =
        status["picklistValues"].as_array().unwrap().iter().map(|v| v["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["Enrolled", "In Progress", "Completed", "Expired"]);
    assert_eq!(field("Progress__c")["type"], "percent");
    assert_eq!(field("Score__c")["type"], "double");
    assert_eq!(field("Enrolled_At__c")["type"], "datetime");
    let name = field("Name");
    assert_eq!((name["autoNumber"].as_bool(), name["createable"].as_bool()), (Some(true), Some(false)));
    for key in [
        "name",
        "type",
        "length",
        "externalId",
        "unique",
        "nillable",
        "referenceTo",
        "relationshipName",
        "picklistValues",
        "label",
        "createable",
        "updateable",
    ] {
        assert!(ext.get(key).is_some(), "describe field has {key}");
    }
    let r = emu.api("GET", "/sobjects/Contact/describe", t, None).await;
    let kids = r.body["childRelationships"].as_array().unwrap();
    assert!(kids.iter().any(|k| k["relationshipName"] == "LMS_Enrollments__r" && k["field"] == "Contact__c"));
    let r = emu.api("GET", "/sobjects/LMS_Sync_Settings__c/describe", t, None).await;
    assert_eq!(r.body["customSetting"], true);
    let r = emu.api("GET", "/sobjects/Nope__c/describe", t, None).await;
    assert_eq!(r.status, 404);
    let r = emu.api("GET", "/sobjects/Contact", t, None).await;
    assert_eq!(r.body["objectDescribe"]["keyPrefix"], "003");
}

#[tokio::test]
async fn limits_resource_header_and_403() {
    let emu = start_with(sf_emulator::Config { daily_api_limit: 5, ..sf_emulator::Config::default() }).await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let r = emu.api("GET", "/limits", t, None).await;
    assert_eq!(r.header("sforce-limit-info").as_deref(), Some("api-usage=1/5"));
    assert_eq!(r.body["DailyApiRequests"], json!({"Max": 5, "Remaining": 4}));
    assert!(r.body["PermissionSets"]["CreateCustom"]["Max"].is_number());
    for n in 2..=5 {
        let r = emu.api("GET", "/sobjects", t, None).await;
        assert_eq!(r.header("sforce-limit-info"), Some(format!("api-usage={n}/5")));
    }
    let r = emu.api("GET", "/limits", t, None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body, json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]));
    assert_eq!(r.header("sforce-limit-info").as_deref(), Some("api-usage=5/5"));
    // OAuth still works: it does not count.
    let (status, _) = emu
        .token("", &[("grant_type", "refresh_token"), ("refresh_token", &c.refresh_token), ("client_id", "x")])
        .await;
    assert_eq!(status, 200);
    emu.admin("/limits", json!({"daily_api_limit": 10})).await;
    assert_eq!(emu.api("GET", "/limits", t, None).await.status, 200, "a higher limit admits calls again");
}

#[tokio::test]
async fn counts_by_kind_and_scoped_faults() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(1).await;
    emu.query(t, "SELECT Id FROM Contact").await;
    emu.upsert(
        t,
        "LMS_Enrollment__c",
        "LMS_Enrollment_Id__c",
        json!({"records": [enrollment("E1", "L0", "Enrolled")]}),
    )
    .await;
    emu.api("POST", "/composite", t, Some(json!({"compositeRequest": [{"method": "GET", "url": format!("/services/data/{V}/limits"), "referenceId": "l"}]}))).await;
    emu.api("GET", "/sobjects/Contact/describe", t, None).await;
    emu.api("GET", "/jobs/ingest", t, None).await;
    emu.call("GET", "/services/oauth2/userinfo", Some(t), None).await;
    let s = emu.admin_get("/stats").await;
    for (k, n) in [("query", 1), ("collections", 1), ("composite", 1), ("rest", 1), ("bulk", 1), ("auth", 1)] {
        assert_eq!(s["by_kind"][k], n, "{k}: {s}");
    }
    assert_eq!(s["api_calls"], 5);
    assert_eq!(s["totals"]["api_calls"], 5);
    assert_eq!(s["totals"]["auth_calls"], 1);

    // Faults scoped to a kind hit only that kind; latency delays.
    emu.admin("/faults", json!({"kind": "server_error", "count": 1, "scope": "composite"})).await;
    let (status, _) = emu.query(t, "SELECT Id FROM Contact").await;
    assert_eq!(status, 200);
    let r = emu.api("POST", "/composite", t, Some(json!({"compositeRequest": []}))).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body[0]["errorCode"], "UNKNOWN_EXCEPTION");
    emu.admin("/faults", json!({"kind": "invalid_session", "count": 1, "scope": "query"})).await;
    let (status, body) = emu.query(t, "SELECT Id FROM Contact").await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (401, Some("INVALID_SESSION_ID")));
    emu.admin("/faults", json!({"kind": "request_limit_exceeded", "count": 1})).await;
    assert_eq!(emu.api("GET", "/limits", t, None).await.status, 403);
    emu.admin("/faults", json!({"kind": "latency", "count": 1, "latency_ms": 250})).await;
    let started = std::time::Instant::now();
    assert_eq!(emu.api("GET", "/limits", t, None).await.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    emu.admin("/faults", json!({"kind": "server_unavailable", "count": 3})).await;
    assert_eq!(emu.admin_get("/faults").await["faults"][0]["remaining"], 3);
    emu.client.delete(emu.url("/__emulator/faults")).send().await.unwrap();
    assert_eq!(emu.api("GET", "/limits", t, None).await.status, 200);
    let bad: Value = emu
        .client
        .post(emu.url("/__emulator/faults"))
        .json(&json!({"kind": "latency", "scope": "nope"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bad["error"].as_str().unwrap().contains("unknown scope"));
}

#[tokio::test]
async fn seeded_org_and_least_privilege_switches() {
    let emu =
        start_with(sf_emulator::Config { integration_user_modify_all_data: true, ..sf_emulator::Config::default() })
            .await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let org = emu.admin_get("/org").await;
    let uid = org["identity"]["integration_user_id"].as_str().unwrap();
    let (_, o) = emu.query(t, "SELECT Id, Name, OrganizationType, IsSandbox FROM Organization").await;
    assert_eq!(o["totalSize"], 1);
    assert_eq!(o["records"][0]["Id"], org["identity"]["org_id"]);
    let q = format!(
        "SELECT PermissionSet.Name, PermissionSet.PermissionsModifyAllData, PermissionSet.IsOwnedByProfile FROM PermissionSetAssignment WHERE AssigneeId = '{uid}'"
    );
    let (status, body) = emu.query(t, &q).await;
    assert_eq!(status, 200, "{body}");
    let mad = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["PermissionSet"]["PermissionsModifyAllData"] == true)
        .count();
    assert_eq!(mad, 1, "the Modify All Data permission set is assigned: {body}");
    let (_, p) = emu.query(t, &format!("SELECT Profile.Name FROM User WHERE Id = '{uid}'")).await;
    assert_eq!(p["records"][0]["Profile"]["Name"], "Minimum Access - API Only Integrations");
    // Make the integration user an administrator, and remove the permission set.
    emu.admin("/integration-user", json!({"profile": "System Administrator", "modify_all_data": false})).await;
    let (_, p) = emu
        .query(t, &format!("SELECT Profile.Name, Profile.PermissionsModifyAllData FROM User WHERE Id = '{uid}'"))
        .await;
    assert_eq!(p["records"][0]["Profile"]["Name"], "System Administrator");
    assert_eq!(p["records"][0]["Profile"]["PermissionsModifyAllData"], true);
    let (_, body) = emu.query(t, &q).await;
    let names: Vec<&str> =
        body["records"].as_array().unwrap().iter().map(|r| r["PermissionSet"]["Name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"LearnLink_Admin_Override"), "{names:?}");
    assert_eq!(
        body["records"].as_array().unwrap().iter().filter(|r| r["PermissionSet"]["IsOwnedByProfile"] == true).count(),
        1
    );
}
