//! The automation stand-in (the sample trigger) and its kill switch, the hierarchy
//! custom setting LMS_Sync_Settings__c, readable and writable through the API.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn one_side_effect_per_enrollment_write_unless_bypassed() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(2).await;
    let batch = json!({"records": [enrollment("E1", "L0", "Enrolled"), enrollment("E2", "L1", "Enrolled")]});
    emu.upsert(t, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", batch.clone()).await;
    emu.upsert(t, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", batch.clone()).await;
    let a = emu.admin_get("/automation").await;
    assert_eq!(a["count"], 4, "{a}");
    assert_eq!(a["effects"][0]["operation"], "insert");
    assert_eq!(a["effects"][2]["operation"], "update");
    // The side effects are Tasks on the enrollments.
    let (_, tasks) = emu.query(t, "SELECT Id, Subject, What.Name FROM Task").await;
    assert_eq!(tasks["totalSize"], 4);
    assert!(tasks["records"][0]["Subject"].as_str().unwrap().starts_with("New LMS enrollment"));

    // The org default of the custom setting: created through the REST API.
    let org = emu.admin_get("/org").await;
    let org_id = org["identity"]["org_id"].as_str().unwrap();
    let (_, none) = emu
        .query(t, &format!("SELECT Id, Bypass_Automation__c FROM LMS_Sync_Settings__c WHERE SetupOwnerId = '{org_id}'"))
        .await;
    assert_eq!(none["totalSize"], 0);
    let r = emu
        .api(
            "POST",
            "/sobjects/LMS_Sync_Settings__c",
            t,
            Some(json!({"SetupOwnerId": org_id, "Bypass_Automation__c": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let setting = r.body["id"].as_str().unwrap().to_owned();
    let (_, s) = emu
        .query(
            t,
            &format!("SELECT Id, Name, Bypass_Automation__c FROM LMS_Sync_Settings__c WHERE SetupOwnerId = '{org_id}'"),
        )
        .await;
    assert_eq!(s["records"][0]["Bypass_Automation__c"], true);
    assert_eq!(s["records"][0]["Name"], "LMS Sync Settings (Organization)");
    // A second org default is a duplicate.
    let r = emu.api("POST", "/sobjects/LMS_Sync_Settings__c", t, Some(json!({"SetupOwnerId": org_id}))).await;
    assert_eq!(r.body[0]["errorCode"], "DUPLICATE_VALUE");
    assert_eq!(emu.admin_get("/automation").await["bypassed_for_integration_user"], true);

    emu.upsert(t, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", batch.clone()).await;
    assert_eq!(emu.admin_get("/automation").await["count"], 4, "bypassed: no side effect");

    // Restore the previous value: side effects again.
    let r = emu
        .api(
            "PATCH",
            &format!("/sobjects/LMS_Sync_Settings__c/{setting}"),
            t,
            Some(json!({"Bypass_Automation__c": false})),
        )
        .await;
    assert_eq!(r.status, 204);
    emu.upsert(
        t,
        "LMS_Enrollment__c",
        "LMS_Enrollment_Id__c",
        json!({"records": [enrollment("E3", "L0", "Enrolled")]}),
    )
    .await;
    assert_eq!(emu.admin_get("/automation").await["count"], 5);

    // A user-level record wins over the org default (getInstance()).
    let uid = org["identity"]["integration_user_id"].as_str().unwrap();
    emu.api(
        "POST",
        "/sobjects/LMS_Sync_Settings__c",
        t,
        Some(json!({"SetupOwnerId": uid, "Bypass_Automation__c": true})),
    )
    .await;
    emu.upsert(
        t,
        "LMS_Enrollment__c",
        "LMS_Enrollment_Id__c",
        json!({"records": [enrollment("E4", "L0", "Enrolled")]}),
    )
    .await;
    assert_eq!(emu.admin_get("/automation").await["count"], 5);

    // Switched off entirely by configuration.
    emu.settings(json!({"automation": false})).await;
    emu.client.delete(emu.url("/__emulator/automation")).send().await.unwrap();
    emu.api("DELETE", &format!("/sobjects/LMS_Sync_Settings__c/{setting}"), t, None).await;
    emu.upsert(
        t,
        "LMS_Enrollment__c",
        "LMS_Enrollment_Id__c",
        json!({"records": [enrollment("E5", "L0", "Enrolled")]}),
    )
    .await;
    assert_eq!(emu.admin_get("/automation").await["count"], 0);
}

#[tokio::test]
async fn side_effects_roll_back_with_their_transaction() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "PATCH", "url": format!("/services/data/{V}/composite/sobjects/LMS_Enrollment__c/LMS_Enrollment_Id__c"), "referenceId": "ok",
         "body": {"records": [enrollment("E1", "L0", "Enrolled")]}},
        {"method": "GET", "url": format!("/services/data/{V}/query?q=SELECT+Bogus+FROM+Contact"), "referenceId": "bad"},
    ]});
    emu.api("POST", "/composite", &c.access_token, Some(body)).await;
    assert_eq!(emu.admin_get("/automation").await["count"], 0);
    assert_eq!(emu.admin_get("/records/Task").await, json!([]));
}
