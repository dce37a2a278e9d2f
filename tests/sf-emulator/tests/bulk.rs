//! Bulk API 2.0: ingest jobs end to end (20,000-row upsert by external id, failed
//! rows, aborted jobs and unprocessed records, results in another order than the
//! upload) and query jobs with locator paging.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn create_job(emu: &Emu, t: &str, body: Value) -> String {
    let r = emu.api("POST", "/jobs/ingest", t, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Open");
    r.body["id"].as_str().unwrap().to_owned()
}

async fn upload(emu: &Emu, t: &str, id: &str, csv: String) -> u16 {
    let r = emu
        .client
        .put(emu.data(&format!("/jobs/ingest/{id}/batches")))
        .bearer_auth(t)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn set_state(emu: &Emu, t: &str, kind: &str, id: &str, state: &str) -> Resp {
    emu.api("PATCH", &format!("/jobs/{kind}/{id}"), t, Some(json!({"state": state}))).await
}

/// Polls until the job leaves the processing states (bounded); returns the info and
/// every state seen.
async fn wait(emu: &Emu, t: &str, kind: &str, id: &str) -> (Value, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let info = emu.api("GET", &format!("/jobs/{kind}/{id}"), t, None).await.body;
        let state = info["state"].as_str().unwrap().to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if ["JobComplete", "Failed", "Aborted"].contains(&state.as_str()) {
            return (info, seen);
        }
        assert!(Instant::now() < deadline, "job {id} stuck in {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn results(emu: &Emu, t: &str, id: &str, which: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let r = emu.client.get(emu.data(&format!("/jobs/ingest/{id}/{which}/"))).bearer_auth(t).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv");
    parse_csv(&r.text().await.unwrap())
}

fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let header = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = rdr.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    (header, rows)
}

fn enrollment_csv(range: std::ops::Range<usize>, status: &str) -> String {
    let mut s = String::from(
        "LMS_Enrollment_Id__c,Contact__r.LMS_Learner_Id__c,Course_Id__c,Course_Title__c,Status__c,Progress__c,Enrolled_At__c\n",
    );
    for i in range {
        s.push_str(&format!(
            "E{i},L{},C{},\"Course, {}\",{status},{},2026-05-12T10:00:00.000Z\n",
            i % 100,
            i % 7,
            i % 7,
            i % 101
        ));
    }
    s
}

#[tokio::test]
async fn twenty_thousand_row_upsert_end_to_end() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(100).await;
    let started = Instant::now();
    let id = create_job(&emu, t, json!({"object": "LMS_Enrollment__c", "externalIdFieldName": "LMS_Enrollment_Id__c", "operation": "upsert", "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"})).await;
    let info = emu.api("GET", &format!("/jobs/ingest/{id}"), t, None).await.body;
    let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "operation",
            "object",
            "createdById",
            "createdDate",
            "systemModstamp",
            "state",
            "externalIdFieldName",
            "concurrencyMode",
            "contentType",
            "apiVersion",
            "jobType",
            "lineEnding",
            "columnDelimiter",
            "numberRecordsProcessed",
            "numberRecordsFailed",
            "retries",
            "totalProcessingTime",
            "apiActiveProcessingTime",
            "apexProcessingTime"
        ]
    );
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(upload(&emu, t, &id, enrollment_csv(0..20_000, "Enrolled")).await, 201);
    let r = set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    assert_eq!(r.body["state"], "UploadComplete");
    let (info, states) = wait(&emu, t, "ingest", &id).await;
    let elapsed = started.elapsed();
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(states.last().unwrap(), "JobComplete");
    assert!(states.iter().any(|s| s == "UploadComplete" || s == "InProgress"), "{states:?}");
    assert_eq!(info["numberRecordsProcessed"], 20_000);
    assert_eq!(info["numberRecordsFailed"], 0);
    println!("20,000-row Bulk upsert: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");

    let (header, rows) = results(&emu, t, &id, "successfulResults").await;
    assert_eq!(header[..3], ["sf__Id", "sf__Created", "LMS_Enrollment_Id__c"]);
    assert_eq!(header[3], "Contact__r.LMS_Learner_Id__c");
    assert_eq!(rows.len(), 20_000);
    let order: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    let upload_order: Vec<String> = (0..20_000).map(|i| format!("E{i}")).collect();
    assert_ne!(
        order,
        upload_order.iter().map(String::as_str).collect::<Vec<_>>(),
        "results come back in another order"
    );
    // Every row is matched, by its external id, to a created record.
    let by_ext: HashMap<&str, &Vec<String>> = rows.iter().map(|r| (r[2].as_str(), r)).collect();
    assert_eq!(by_ext.len(), 20_000);
    let dump = emu.admin_get("/records/LMS_Enrollment__c").await;
    let dump = dump.as_array().unwrap();
    assert_eq!(dump.len(), 20_000);
    for rec in dump.iter().step_by(997) {
        let ext = rec["LMS_Enrollment_Id__c"].as_str().unwrap();
        let row = by_ext[ext];
        assert_eq!(rec["Id"].as_str().unwrap(), row[0]);
        assert_eq!(row[1], "true");
        assert!(rec["Course_Title__c"].as_str().unwrap().starts_with("Course, "));
    }
    let (_, failed) = results(&emu, t, &id, "failedResults").await;
    assert!(failed.is_empty());
    let (_, unprocessed) = results(&emu, t, &id, "unprocessedrecords").await;
    assert!(unprocessed.is_empty());

    // The same file again: every row an update.
    let id2 = create_job(
        &emu,
        t,
        json!({"object": "LMS_Enrollment__c", "externalIdFieldName": "LMS_Enrollment_Id__c", "operation": "upsert"}),
    )
    .await;
    upload(&emu, t, &id2, enrollment_csv(0..20_000, "Completed")).await;
    set_state(&emu, t, "ingest", &id2, "UploadComplete").await;
    let (info, _) = wait(&emu, t, "ingest", &id2).await;
    assert_eq!(info["numberRecordsProcessed"], 20_000);
    let (_, rows) = results(&emu, t, &id2, "successfulResults").await;
    assert!(rows.iter().all(|r| r[1] == "false"));
    let (_, n) = emu.query(t, "SELECT COUNT() FROM LMS_Enrollment__c WHERE Status__c = 'Completed'").await;
    assert_eq!(n["totalSize"], 20_000);
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["bulk_records_processed"], 40_000);
    // Each upload counts as a Bulk batch.
    let limits = emu.api("GET", "/limits", t, None).await.body;
    assert_eq!(limits["DailyBulkApiBatches"]["Remaining"], 15_000 - 2);
}

#[tokio::test]
async fn failed_rows_carry_their_errors() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(2).await;
    let id = create_job(
        &emu,
        t,
        json!({"object": "LMS_Enrollment__c", "externalIdFieldName": "LMS_Enrollment_Id__c", "operation": "upsert"}),
    )
    .await;
    let csv = "LMS_Enrollment_Id__c,Contact__r.LMS_Learner_Id__c,Status__c,Progress__c\n\
               OK1,L0,Enrolled,10\n\
               BAD1,L0,Finished,10\n\
               DUP,L0,Enrolled,10\n\
               DUP,L1,Enrolled,10\n\
               ,L0,Enrolled,10\n\
               NOPARENT,L999,Enrolled,10\n\
               BADNUM,L1,Enrolled,abc\n\
               NULLED,L1,#N/A,#N/A\n";
    upload(&emu, t, &id, csv.to_owned()).await;
    set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    let (info, _) = wait(&emu, t, "ingest", &id).await;
    assert_eq!(info["numberRecordsProcessed"], 8);
    assert_eq!(info["numberRecordsFailed"], 6);
    let (header, rows) = results(&emu, t, &id, "failedResults").await;
    assert_eq!(header[..2], ["sf__Id", "sf__Error"]);
    let err = |ext: &str| rows.iter().find(|r| r[2] == ext).map(|r| r[1].clone()).unwrap();
    assert!(err("BAD1").starts_with("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:"), "{}", err("BAD1"));
    assert!(err("DUP").starts_with("DUPLICATE_EXTERNAL_ID:"), "{}", err("DUP"));
    assert!(err("").starts_with("MISSING_ARGUMENT:"), "{}", err(""));
    assert!(
        err("NOPARENT").starts_with("INVALID_FIELD:Foreign key external ID: L999 not found"),
        "{}",
        err("NOPARENT")
    );
    assert!(err("BADNUM").starts_with("JSON_PARSER_ERROR:") || err("BADNUM").contains("double"), "{}", err("BADNUM"));
    assert!(err("BAD1").ends_with("--"));
    let (_, ok) = results(&emu, t, &id, "successfulResults").await;
    let oks: Vec<&str> = ok.iter().map(|r| r[2].as_str()).collect();
    assert!(oks.contains(&"OK1") && oks.contains(&"NULLED"), "{oks:?}");
    let rec = emu
        .admin_get("/records/LMS_Enrollment__c")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["LMS_Enrollment_Id__c"] == "NULLED")
        .cloned()
        .unwrap();
    assert_eq!(rec["Progress__c"], json!(null));
}

#[tokio::test]
async fn aborted_jobs_leave_unprocessed_records() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(100).await;
    // Aborted while Open: everything uploaded is unprocessed.
    let id = create_job(
        &emu,
        t,
        json!({"object": "LMS_Enrollment__c", "externalIdFieldName": "LMS_Enrollment_Id__c", "operation": "upsert"}),
    )
    .await;
    upload(&emu, t, &id, enrollment_csv(0..50, "Enrolled")).await;
    let r = set_state(&emu, t, "ingest", &id, "Aborted").await;
    assert_eq!(r.body["state"], "Aborted");
    let (_, rows) = results(&emu, t, &id, "unprocessedrecords").await;
    assert_eq!(rows.len(), 50);
    // Once aborted, nothing more: no upload, no UploadComplete.
    assert_eq!(upload(&emu, t, &id, enrollment_csv(0..1, "Enrolled")).await, 409);
    assert_eq!(set_state(&emu, t, "ingest", &id, "UploadComplete").await.status, 400);

    // Aborted while InProgress: processed rows stay, the rest is unprocessed.
    emu.settings(json!({"bulk_chunk_delay_ms": 100})).await;
    let id = create_job(
        &emu,
        t,
        json!({"object": "LMS_Enrollment__c", "externalIdFieldName": "LMS_Enrollment_Id__c", "operation": "upsert"}),
    )
    .await;
    upload(&emu, t, &id, enrollment_csv(0..2000, "Enrolled")).await;
    set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = emu.api("GET", &format!("/jobs/ingest/{id}"), t, None).await.body;
        if info["state"] == "InProgress" && info["numberRecordsProcessed"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never InProgress: {info}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(set_state(&emu, t, "ingest", &id, "Aborted").await.body["state"], "Aborted");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let info = emu.api("GET", &format!("/jobs/ingest/{id}"), t, None).await.body;
    assert_eq!(info["state"], "Aborted");
    let processed = info["numberRecordsProcessed"].as_u64().unwrap() as usize;
    assert!(processed > 0 && processed < 2000, "{processed}");
    let (_, ok) = results(&emu, t, &id, "successfulResults").await;
    let (_, unprocessed) = results(&emu, t, &id, "unprocessedrecords").await;
    assert_eq!(ok.len(), processed);
    assert_eq!(unprocessed.len(), 2000 - processed);
    let mut all: Vec<String> =
        ok.iter().map(|r| r[2].clone()).chain(unprocessed.iter().map(|r| r[0].clone())).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2000, "every row is either processed or unprocessed");
}

#[tokio::test]
async fn job_errors_list_delete_and_other_operations() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    // Bad job definitions.
    let r = emu.api("POST", "/jobs/ingest", t, Some(json!({"object": "Nope__c", "operation": "insert"}))).await;
    assert_eq!(r.status, 400);
    let r = emu.api("POST", "/jobs/ingest", t, Some(json!({"object": "Contact", "operation": "upsert"}))).await;
    assert_eq!(r.status, 400);
    let r = emu
        .api(
            "POST",
            "/jobs/ingest",
            t,
            Some(json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"})),
        )
        .await;
    assert_eq!(r.status, 400);
    // An unknown column fails the whole job.
    let id = create_job(&emu, t, json!({"object": "Contact", "operation": "insert"})).await;
    upload(&emu, t, &id, "LastName,Bogus__c\nA,1\n".to_owned()).await;
    set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    let (info, _) = wait(&emu, t, "ingest", &id).await;
    assert_eq!(info["state"], "Failed");
    assert!(info["errorMessage"].as_str().unwrap().contains("Bogus__c"), "{info}");

    // Insert then update then delete Contacts, CRLF + semicolons.
    let id = create_job(
        &emu,
        t,
        json!({"object": "Contact", "operation": "insert", "lineEnding": "CRLF", "columnDelimiter": "SEMICOLON"}),
    )
    .await;
    upload(
        &emu,
        t,
        &id,
        "LastName;Email;LMS_Learner_Id__c\r\nOne;one@example.com;L1\r\nTwo;two@example.com;L2\r\n".to_owned(),
    )
    .await;
    set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    let (info, _) = wait(&emu, t, "ingest", &id).await;
    assert_eq!(info["numberRecordsProcessed"], 2);
    assert_eq!(info["lineEnding"], "CRLF");
    let r =
        emu.client.get(emu.data(&format!("/jobs/ingest/{id}/successfulResults/"))).bearer_auth(t).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.starts_with("\"sf__Id\";\"sf__Created\";\"LastName\""), "{text}");
    assert!(text.contains("\r\n"));
    let ids: Vec<String> = emu
        .admin_get("/records/Contact")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_owned())
        .collect();
    let id = create_job(&emu, t, json!({"object": "Contact", "operation": "update"})).await;
    upload(&emu, t, &id, format!("Id,Title\n{},Boss\n{},\n", ids[0], ids[1])).await;
    set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    wait(&emu, t, "ingest", &id).await;
    let contacts = emu.admin_get("/records/Contact").await;
    assert_eq!(contacts[0]["Title"], "Boss");
    assert_eq!(contacts[1]["Title"], json!(null));
    let id = create_job(&emu, t, json!({"object": "Contact", "operation": "delete"})).await;
    upload(&emu, t, &id, format!("Id\n{}\n001Em0000000zzzAAA\n", ids[0])).await;
    set_state(&emu, t, "ingest", &id, "UploadComplete").await;
    let (info, _) = wait(&emu, t, "ingest", &id).await;
    assert_eq!((info["numberRecordsProcessed"].as_u64(), info["numberRecordsFailed"].as_u64()), (Some(2), Some(1)));
    assert_eq!(emu.admin_get("/records/Contact").await.as_array().unwrap().len(), 1);

    // List and delete.
    let list = emu.api("GET", "/jobs/ingest", t, None).await.body;
    assert_eq!(list["done"], true);
    assert_eq!(list["records"].as_array().unwrap().len(), 4);
    assert_eq!(emu.api("DELETE", &format!("/jobs/ingest/{id}"), t, None).await.status, 204);
    assert_eq!(emu.api("GET", &format!("/jobs/ingest/{id}"), t, None).await.status, 404);
    assert_eq!(emu.api("GET", "/jobs/ingest", t, None).await.body["records"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bulk_query_with_locator_paging() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let acc = emu.seed("Account", json!([{"Name": "Big, \"Quoted\" Corp"}])).await;
    let contacts: Vec<Value> = (0..2500)
        .map(|i| json!({"LastName": format!("Q{i:04}"), "AccountId": acc[0], "LMS_Learner_Id__c": format!("L{i}")}))
        .collect();
    emu.seed("Contact", Value::Array(contacts)).await;
    let r = emu.api("POST", "/jobs/query", t, Some(json!({"operation": "query", "query": "SELECT Id, LastName, Account.Name, CreatedDate FROM Contact ORDER BY LastName"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "UploadComplete");
    assert_eq!(r.body["operation"], "query");
    assert_eq!(r.body["object"], "Contact");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let (info, _) = wait(&emu, t, "query", &id).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["jobType"], "V2Query");
    assert_eq!(info["numberRecordsProcessed"], 2500);
    let mut locator: Option<String> = None;
    let mut all: Vec<Vec<String>> = Vec::new();
    let mut pages = 0;
    loop {
        let mut url = emu.data(&format!("/jobs/query/{id}/results?maxRecords=1000"));
        if let Some(l) = &locator {
            url.push_str(&format!("&locator={l}"));
        }
        let r = emu.client.get(url).bearer_auth(t).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let next = r.headers()["sforce-locator"].to_str().unwrap().to_owned();
        let n: usize = r.headers()["sforce-numberofrecords"].to_str().unwrap().parse().unwrap();
        assert!(r.headers().get("sforce-limit-info").is_some());
        let (header, rows) = parse_csv(&r.text().await.unwrap());
        assert_eq!(header, ["Id", "LastName", "Account.Name", "CreatedDate"]);
        assert_eq!(rows.len(), n);
        all.extend(rows);
        pages += 1;
        assert!(pages <= 5);
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 2500);
    assert_eq!(all[0][1], "Q0000");
    assert_eq!(all[2499][1], "Q2499");
    assert_eq!(all[0][2], "Big, \"Quoted\" Corp");
    assert!(all[0][3].ends_with(".000Z"), "{}", all[0][3]);
    let r = emu
        .client
        .get(emu.data(&format!("/jobs/query/{id}/results?locator=bogus!")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let list = emu.api("GET", "/jobs/query", t, None).await.body;
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
    let limits = emu.api("GET", "/limits", t, None).await.body;
    assert_eq!(limits["DailyBulkV2QueryJobs"]["Remaining"], 9_999);
}

#[tokio::test]
async fn a_hundred_megabyte_upload_is_accepted() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    let id = create_job(&emu, t, json!({"object": "Contact", "operation": "insert"})).await;
    let line = format!("{},x@example.com\n", "L".repeat(60));
    let rows = 100 * 1024 * 1024 / line.len() + 1;
    let mut csv = String::with_capacity(rows * line.len() + 32);
    csv.push_str("LastName,Email\n");
    for _ in 0..rows {
        csv.push_str(&line);
    }
    assert!(csv.len() >= 100 * 1024 * 1024);
    let started = Instant::now();
    assert_eq!(upload(&emu, t, &id, csv).await, 201);
    let elapsed = started.elapsed();
    println!("100 MB upload: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert_eq!(set_state(&emu, t, "ingest", &id, "Aborted").await.body["state"], "Aborted");
    assert_eq!(emu.api("DELETE", &format!("/jobs/ingest/{id}"), t, None).await.status, 204);
}
