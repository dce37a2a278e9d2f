//! sObject Collections upsert by external id.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn create_then_update_by_external_id() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(2).await;

    let body = json!({"allOrNone": false, "records": [
        enrollment("E1", "L0", "Enrolled"),
        enrollment("E2", "L1", "In Progress"),
    ]});
    let (status, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body).await;
    assert_eq!(status, 200);
    let res = res.as_array().unwrap().clone();
    assert_eq!(res.len(), 2);
    for r in &res {
        assert_eq!(r["success"], true);
        assert_eq!(r["created"], true);
        assert_eq!(r["errors"], json!([]));
        let id = r["id"].as_str().unwrap();
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("a0"));
    }

    // Same external id (different case: external ids are case-insensitive) → update.
    let mut rec = enrollment("e1", "L0", "Completed");
    rec["Progress__c"] = json!(100);
    rec["Completed_At__c"] = json!("2026-05-13T09:30:00Z");
    let (status, upd) =
        emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", json!({"records": [rec]})).await;
    assert_eq!(status, 200);
    assert_eq!(upd[0]["created"], false);
    assert_eq!(upd[0]["id"], res[0]["id"]);

    let dump = emu.admin_get("/records/LMS_Enrollment__c").await;
    let rows = dump.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let e1 = &rows[0];
    assert_eq!(e1["Status__c"], "Completed");
    assert_eq!(e1["Progress__c"], 100);
    assert_eq!(e1["Completed_At__c"], "2026-05-13T09:30:00.000+0000");
    assert_eq!(e1["LMS_Enrollment_Id__c"], "e1", "the matched external id is written as sent");
    assert!(e1["Name"].as_str().unwrap().starts_with("ENR-"));
    let contacts = emu.admin_get("/records/Contact").await;
    assert_eq!(e1["Contact__c"], contacts[0]["Id"]);
    assert_eq!(contacts[0]["Name"], "Ada Learner0");
    for k in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        let v = e1[k].as_str().unwrap();
        assert!(v.ends_with(".000+0000"), "{k}={v}");
    }

    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["records_written"], 3);
    assert_eq!(stats["by_kind"]["collections"], 2);
    assert_eq!(stats["by_endpoint"]["collections_upsert"], 2);
}

#[tokio::test]
async fn each_error_class() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;

    let mut no_attrs = enrollment("E1", "L0", "Enrolled");
    no_attrs.as_object_mut().unwrap().remove("attributes");
    let mut unknown = enrollment("E2", "L0", "Enrolled");
    unknown["Bogus__c"] = json!(1);
    let mut wrong_type = enrollment("E3", "L0", "Enrolled");
    wrong_type["Score__c"] = json!("abc");
    let bad_picklist = enrollment("E4", "L0", "Finished");
    let mut no_ext = enrollment("E5", "L0", "Enrolled");
    no_ext.as_object_mut().unwrap().remove("LMS_Enrollment_Id__c");
    let missing_parent = enrollment("E6", "L404", "Enrolled");
    let mut bad_date = enrollment("E7", "L0", "Enrolled");
    bad_date["Enrolled_At__c"] = json!("yesterday");
    let mut read_only = enrollment("E8", "L0", "Enrolled");
    read_only["Name"] = json!("X");
    let mut numeric_string = enrollment("E9", "L0", "Enrolled");
    numeric_string["Score__c"] = json!("87.5");
    let ok = enrollment("E10", "L0", "Enrolled");

    let body = json!({"allOrNone": false, "records": [
        no_attrs, unknown, wrong_type, bad_picklist, no_ext, missing_parent, bad_date, read_only, numeric_string, ok,
    ]});
    let (status, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body).await;
    assert_eq!(status, 200);
    let expect = [
        (
            "JSON_PARSER_ERROR",
            "Nested object for polymorphic foreign key must have an attributes field before any other fields.",
        ),
        ("INVALID_FIELD", "No such column 'Bogus__c' on sobject of type LMS_Enrollment__c"),
        (
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of double from VALUE_STRING value abc or request may be missing a required field",
        ),
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status: bad value for restricted picklist field: Finished"),
        ("MISSING_ARGUMENT", "LMS_Enrollment_Id__c not specified"),
        ("INVALID_FIELD", "Foreign key external ID: L404 not found for field LMS_Learner_Id__c in entity Contact"),
        (
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of dateTime from VALUE_STRING value yesterday or request may be missing a required field",
        ),
        (
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: Name. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
        ),
    ];
    for (i, (code, msg)) in expect.iter().enumerate() {
        let r = &res[i];
        assert_eq!(r["success"], false, "record {i}: {r}");
        assert_eq!(r["created"], false);
        assert!(r.get("id").is_none(), "failed results carry no id: {r}");
        assert_eq!(first_error(r), (*code, *msg), "record {i}");
        assert!(r["errors"][0]["fields"].is_array());
    }
    assert_eq!(res[3]["errors"][0]["fields"], json!(["Status__c"]));
    assert_eq!(res[8]["success"], true, "numeric strings are coerced");
    assert_eq!(res[9]["success"], true);

    // Required field missing on create.
    let (_, res) = emu
        .upsert(&c.access_token, "Contact", "LMS_Learner_Id__c", json!({"records": [
            {"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L77", "FirstName": "No"},
            {"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L78", "LastName": "Ok", "Email": "not-an-email"},
            {"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L79", "LastName": "x".repeat(81)},
        ]}))
        .await;
    assert_eq!(first_error(&res[0]), ("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]"));
    assert_eq!(res[0]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(first_error(&res[1]).0, "INVALID_EMAIL_ADDRESS");
    assert_eq!(first_error(&res[2]).0, "STRING_TOO_LONG");
    // But an update of an existing contact needs no LastName.
    let (_, res) = emu
        .upsert(
            &c.access_token,
            "Contact",
            "LMS_Learner_Id__c",
            json!({"records": [
                {"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": "L0", "FirstName": "Grace"},
            ]}),
        )
        .await;
    assert_eq!(res[0]["success"], true);
    assert_eq!(res[0]["created"], false);

    // Request-level errors.
    let many: Vec<Value> = (0..201).map(|i| enrollment(&format!("X{i}"), "L0", "Enrolled")).collect();
    let (status, body) =
        emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", json!({"records": many})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let (status, body) = emu.upsert(&c.access_token, "Nope__c", "X__c", json!({"records": []})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_TYPE");
    let (status, body) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "Course_Id__c", json!({"records": []})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");
    let r = emu
        .client
        .patch(emu.data("/composite/sobjects/LMS_Enrollment__c/LMS_Enrollment_Id__c"))
        .bearer_auth(&c.access_token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()[0]["errorCode"], "JSON_PARSER_ERROR");
}

#[tokio::test]
async fn duplicate_external_ids_in_one_request() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;
    let body = json!({"records": [
        enrollment("E1", "L0", "Enrolled"),
        enrollment("E2", "L0", "Enrolled"),
        enrollment("e1", "L0", "Completed"),
    ]});
    let (_, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body).await;
    assert_eq!(first_error(&res[0]).0, "DUPLICATE_EXTERNAL_ID");
    assert_eq!(res[0]["errors"][0]["message"], "Duplicate external id specified: E1");
    assert_eq!(res[1]["success"], true);
    assert_eq!(first_error(&res[2]).0, "DUPLICATE_EXTERNAL_ID");
    assert_eq!(emu.admin_get("/records/LMS_Enrollment__c").await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn all_or_none_rolls_back_everything() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;
    let body = json!({"allOrNone": true, "records": [
        enrollment("E1", "L0", "Enrolled"),
        enrollment("E2", "L0", "Bogus"),
        enrollment("E3", "L0", "Enrolled"),
    ]});
    let (status, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body).await;
    assert_eq!(status, 200);
    let rolled = (
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
    );
    assert_eq!(first_error(&res[0]), rolled);
    assert_eq!(first_error(&res[1]).0, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_eq!(first_error(&res[2]), rolled);
    assert_eq!(emu.admin_get("/records/LMS_Enrollment__c").await, json!([]));
    assert_eq!(emu.admin_get("/stats").await["records_written"], 0);
}

#[tokio::test]
async fn relationship_by_external_id_and_by_id() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(2).await;
    let contacts = emu.admin_get("/records/Contact").await;
    let id1 = contacts[1]["Id"].as_str().unwrap().to_owned();

    let mut by_id = enrollment("E2", "L0", "Enrolled");
    by_id.as_object_mut().unwrap().remove("Contact__r");
    by_id["Contact__c"] = json!(&id1[..15]);
    let mut both = enrollment("E3", "L0", "Enrolled");
    both["Contact__c"] = json!(id1);
    let mut not_ext = enrollment("E4", "L0", "Enrolled");
    not_ext["Contact__r"] = json!({"attributes": {"type": "Contact"}, "Email": "ada0@example.com"});
    let mut bad_id = enrollment("E5", "L0", "Enrolled");
    bad_id.as_object_mut().unwrap().remove("Contact__r");
    bad_id["Contact__c"] = json!("not-an-id");

    let body = json!({"records": [enrollment("E1", "l0", "Enrolled"), by_id, both, not_ext, bad_id]});
    let (_, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body).await;
    assert_eq!(res[0]["success"], true, "{res}");
    assert_eq!(res[1]["success"], true, "{res}");
    assert_eq!(first_error(&res[2]).0, "INVALID_FIELD");
    assert!(first_error(&res[2]).1.starts_with("Cannot specify both an external ID reference Contact__r"));
    assert_eq!(
        first_error(&res[3]),
        (
            "INVALID_FIELD",
            "Field name provided, Email does not match an External ID, Salesforce Id, or indexed field for Contact"
        )
    );
    assert_eq!(first_error(&res[4]).0, "MALFORMED_ID");
    let rows = emu.admin_get("/records/LMS_Enrollment__c").await;
    assert_eq!(rows[0]["Contact__c"], contacts[0]["Id"]);
    assert_eq!(rows[1]["Contact__c"], id1.as_str());
}

#[tokio::test]
async fn unable_to_lock_row_fault() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;
    emu.admin("/faults", json!({"kind": "unable_to_lock_row", "count": 1})).await;
    // A read does not consume the write fault.
    let (status, _) = emu.query(&c.access_token, "SELECT Id FROM Contact").await;
    assert_eq!(status, 200);
    let body = json!({"records": [enrollment("E1", "L0", "Enrolled"), enrollment("E2", "L0", "Enrolled")]});
    let (status, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body.clone()).await;
    assert_eq!(status, 200);
    for r in res.as_array().unwrap() {
        let (code, msg) = first_error(r);
        assert_eq!(code, "UNABLE_TO_LOCK_ROW");
        assert!(msg.starts_with("unable to obtain exclusive access to this record or 1 records: "));
    }
    assert_eq!(emu.admin_get("/records/LMS_Enrollment__c").await, json!([]));
    // The retry succeeds.
    let (_, res) = emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", body).await;
    assert_eq!(res[0]["success"], true);
}

#[tokio::test]
async fn ten_thousand_records_upserted_correctly() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(100).await;
    for round in 0..2 {
        for batch in 0..50 {
            let records: Vec<Value> = (0..200)
                .map(|i| {
                    let n = batch * 200 + i;
                    enrollment(
                        &format!("E{n}"),
                        &format!("L{}", n % 100),
                        if round == 0 { "Enrolled" } else { "Completed" },
                    )
                })
                .collect();
            let (status, res) = emu
                .upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", json!({"records": records}))
                .await;
            assert_eq!(status, 200);
            assert!(res.as_array().unwrap().iter().all(|r| r["success"] == true && r["created"] == (round == 0)));
        }
    }
    let (_, count) =
        emu.query(&c.access_token, "SELECT COUNT() FROM LMS_Enrollment__c WHERE Status__c = 'Completed'").await;
    assert_eq!(count["totalSize"], 10_000);
    assert_eq!(emu.admin_get("/stats").await["records_written"], 20_000);
}

#[tokio::test]
async fn create_update_retrieve_delete_collections() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let r = emu
        .api(
            "POST",
            "/composite/sobjects",
            t,
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "A1"},
                {"attributes": {"type": "Contact"}, "LastName": "C1", "LMS_Learner_Id__c": "L1"},
                {"attributes": {"type": "Contact"}, "FirstName": "no last name"},
                {"attributes": {"type": "Nope__c"}, "Name": "x"},
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let res = r.body.as_array().unwrap();
    assert_eq!(res[0]["success"], true);
    assert!(res[0].get("created").is_none(), "create results carry no `created`");
    assert_eq!(res[1]["success"], true);
    assert_eq!(first_error(&res[2]).0, "REQUIRED_FIELD_MISSING");
    assert_eq!(first_error(&res[3]).0, "INVALID_TYPE");
    let acc = res[0]["id"].as_str().unwrap().to_owned();
    let con = res[1]["id"].as_str().unwrap().to_owned();

    // Update by id (lower-case "id" as clients send it), one unknown id.
    let r = emu
        .api(
            "PATCH",
            "/composite/sobjects",
            t,
            Some(json!({"records": [
                {"attributes": {"type": "Account"}, "id": acc, "Name": "A1 renamed"},
                {"attributes": {"type": "Account"}, "id": "001xx000003DHP0AAO", "Name": "ghost"},
            ]})),
        )
        .await;
    assert_eq!(r.body[0], json!({"id": acc, "success": true, "errors": []}));
    assert_eq!(
        r.body[1],
        json!({"success": false, "errors": [{"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id", "fields": []}]})
    );

    // Retrieve (GET and POST).
    let r = emu
        .api("GET", &format!("/composite/sobjects/Account?ids={acc},001Em0000000zzzAAA&fields=Id,Name"), t, None)
        .await;
    assert_eq!(r.body[0]["Name"], "A1 renamed");
    assert_eq!(r.body[1], json!(null));
    let r = emu
        .api(
            "POST",
            "/composite/sobjects/Contact",
            t,
            Some(json!({"ids": [con], "fields": ["LastName", "LMS_Learner_Id__c"]})),
        )
        .await;
    assert_eq!(r.body[0]["LMS_Learner_Id__c"], "L1");

    // Delete with allOrNone: one bad id rolls the other back.
    let r = emu.api("DELETE", &format!("/composite/sobjects?ids={acc},not-an-id&allOrNone=true"), t, None).await;
    assert_eq!(r.body[0]["success"], false);
    assert_eq!(first_error(&r.body[0]).0, "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(first_error(&r.body[1]).0, "MALFORMED_ID");
    let r = emu.api("DELETE", &format!("/composite/sobjects?ids={acc},{con}&allOrNone=false"), t, None).await;
    assert_eq!(r.body, json!([{"id": acc, "success": true, "errors": []}, {"id": con, "success": true, "errors": []}]));
    let r = emu.api("DELETE", &format!("/composite/sobjects?ids={acc}"), t, None).await;
    assert_eq!(first_error(&r.body[0]).0, "ENTITY_IS_DELETED");
    let s = emu.admin_get("/stats").await;
    for e in ["collections_create", "collections_update", "collections_retrieve", "collections_delete"] {
        assert!(s["by_endpoint"][e].as_u64().unwrap() >= 1, "{e}");
    }
    assert_eq!(s["by_kind"]["collections"], 7);
}

#[tokio::test]
async fn collections_all_or_none_on_create() {
    let emu = start().await;
    let c = emu.connect().await;
    let r = emu
        .api(
            "POST",
            "/composite/sobjects",
            &c.access_token,
            Some(json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "Name": "ok"},
                {"attributes": {"type": "Account"}},
            ]})),
        )
        .await;
    assert_eq!(first_error(&r.body[0]).0, "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(first_error(&r.body[1]).0, "REQUIRED_FIELD_MISSING");
    assert_eq!(emu.admin_get("/records/Account").await, json!([]));
}

#[tokio::test]
async fn unique_values_and_types() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(2).await;
    // Setting another contact's learner id: DUPLICATE_VALUE.
    let contacts = emu.admin_get("/records/Contact").await;
    let id1 = contacts[1]["Id"].as_str().unwrap();
    let r = emu
        .api(
            "PATCH",
            "/composite/sobjects",
            &c.access_token,
            Some(json!({"records": [{"attributes": {"type": "Contact"}, "id": id1, "LMS_Learner_Id__c": "l0"}]})),
        )
        .await;
    let (code, msg) = first_error(&r.body[0]);
    assert_eq!(code, "DUPLICATE_VALUE");
    assert!(msg.contains(contacts[0]["Id"].as_str().unwrap()), "{msg}");
    // Types: a number too large for Percent(5,2); a too-long text; a bad date.
    let mut big = enrollment("E1", "L0", "Enrolled");
    big["Progress__c"] = json!(1000);
    let mut long = enrollment("E2", "L0", "Enrolled");
    long["Course_Id__c"] = json!("x".repeat(256));
    let (_, res) =
        emu.upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", json!({"records": [big, long]})).await;
    assert_eq!(first_error(&res[0]).0, "NUMBER_OUTSIDE_VALID_RANGE");
    assert_eq!(first_error(&res[1]).0, "STRING_TOO_LONG");
}
