//! Job 1 with learners matched to Contacts (SPEC §4.3) on the local stack:
//! the LMS emulator's learners and departments, Contacts and Accounts in the
//! Salesforce emulator, webhooks through the gateway, the review queue and
//! deactivation.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::{Env, Options, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

const SECRET: &str = "whsec-matching-0123456789";
const LMS_KEY: &str = "lms-local-key";

async fn sf_insert(env: &Env, sobject: &str, records: Vec<Value>) -> Vec<String> {
    let r = env
        .http
        .post(format!("{}/__emulator/records/{sobject}", env.endpoints.salesforce_url))
        .json(&records)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    r.json::<Vec<Value>>().await.unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

async fn create_tenant(env: &Env, sync: Value) {
    let mut config = env.tenant_config("acme", SECRET);
    config["lms"] = json!({"base_url": env.endpoints.lms_url, "api_key": LMS_KEY});
    config["sync"] = sync;
    let (status, v) =
        env.admin(Method::POST, "/admin/tenants", Some(json!({"id": "acme", "config": config}))).await.unwrap();
    assert_eq!(status, 201, "{v}");
}

fn by_id(records: &[Value], field: &str) -> HashMap<String, Value> {
    records.iter().filter_map(|r| r[field].as_str().map(|k| (k.to_string(), r.clone()))).collect()
}

#[tokio::test]
async fn learners_are_linked_created_placed_held_and_unlinked() {
    let env = Env::start("job1-matching", Options::default()).unwrap();
    env.lms_dataset(90, 2).await.unwrap();
    // Sixty learners with an enrollment each, and one enrollment of each.
    let all_enrollments = env.lms_all("enrollments").await.unwrap();
    let mut first_enrollment: HashMap<String, String> = HashMap::new();
    for e in &all_enrollments {
        first_enrollment
            .entry(e["learner_id"].as_str().unwrap().to_string())
            .or_insert_with(|| e["id"].as_str().unwrap().to_string());
    }
    let mut learners: Vec<Value> = env
        .lms_all("learners")
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l["active"] == true && first_enrollment.contains_key(l["id"].as_str().unwrap()))
        .collect();
    learners.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    learners.truncate(60);
    assert_eq!(learners.len(), 60);
    let chosen: Vec<String> = learners.iter().map(|l| first_enrollment[l["id"].as_str().unwrap()].clone()).collect();
    let departments = env.lms_all("departments").await.unwrap();
    let dept_name: HashMap<String, String> = departments
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_string(), d["name"].as_str().unwrap().to_string()))
        .collect();
    let id = |i: usize| learners[i]["id"].as_str().unwrap().to_string();
    let email = |i: usize| learners[i]["email"].as_str().unwrap().to_string();

    // Accounts: one per department except the learner 25's, plus a default.
    let skip_dept = learners[25]["department_id"].as_str().unwrap().to_string();
    let mut names: Vec<String> = dept_name.iter().filter(|(k, _)| **k != skip_dept).map(|(_, v)| v.clone()).collect();
    names.sort();
    names.dedup();
    let account_ids = sf_insert(&env, "Account", names.iter().map(|n| json!({"Name": n})).collect()).await;
    let account_of: HashMap<String, String> = names.iter().cloned().zip(account_ids).collect();
    let default_account = sf_insert(&env, "Account", vec![json!({"Name": "Learners without a home"})]).await.remove(0);

    // 0..20 match by email (written in another case), 20..25 twice (ambiguous),
    // 25..40 have no Contact (created), 40..60 are linked already.
    let mut contacts = Vec::new();
    for i in 0..20 {
        contacts.push(json!({"LastName": format!("M{i}"), "Email": email(i).to_uppercase()}));
    }
    for i in 20..25 {
        contacts.push(json!({"LastName": format!("A{i}"), "Email": email(i)}));
        contacts.push(json!({"LastName": format!("B{i}"), "Email": email(i)}));
    }
    for i in 40..60 {
        contacts.push(json!({"LastName": format!("L{i}"), "Email": format!("old-{i}@elsewhere.example"), "LMS_Learner_Id__c": id(i)}));
    }
    sf_insert(&env, "Contact", contacts).await;

    create_tenant(
        &env,
        json!({
            "create_contacts": true,
            "account_placement": {"rule": "department_name", "default_account_id": default_account},
        }),
    )
    .await;
    env.connect_salesforce("acme").await.unwrap();
    let before = env.sf_stats().await.unwrap();

    let sent = env
        .emit_webhooks(
            "acme",
            SECRET,
            json!({"enrollment_ids": chosen, "events_per_delivery": 5, "duplicate_pct": 20, "reorder": true}),
        )
        .await
        .unwrap();
    assert!(sent["statuses"]["202"].as_u64().unwrap() >= 12, "{sent}");
    let enrollments = wait_for("55 enrollments", Duration::from_secs(90), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        Ok((r.len() >= 55).then_some(r))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), 55, "the 5 ambiguous learners are held");
    assert_eq!(enrollments.len(), 55);

    let all_contacts = env.sf_records("Contact").await.unwrap();
    let linked = by_id(&all_contacts, "LMS_Learner_Id__c");
    for i in (0..20).chain(25..60) {
        assert!(linked.contains_key(&id(i)), "learner {i} has a Contact");
    }
    for i in 20..25 {
        assert!(!linked.contains_key(&id(i)), "ambiguous learner {i} is not linked");
    }
    // Created Contacts are placed by department name, else the default.
    for i in 25..40 {
        let c = &linked[&id(i)];
        let dept = learners[i]["department_id"].as_str().unwrap();
        let want = account_of.get(&dept_name[dept]).cloned().unwrap_or(default_account.clone());
        assert_eq!(c["AccountId"].as_str(), Some(want.as_str()), "learner {i} in {}", dept_name[dept]);
        assert_eq!(c["Email"].as_str().map(str::to_lowercase), Some(email(i).to_lowercase()));
    }
    assert_eq!(
        linked[&id(25)]["AccountId"].as_str(),
        Some(default_account.as_str()),
        "no Account named after it: default"
    );
    assert_eq!(
        all_contacts.iter().filter(|c| c["LMS_Learner_Id__c"].is_null()).count(),
        10,
        "never a duplicate Contact"
    );

    // No lookup per record: at most a Contact and an Account query per batch.
    let after = env.sf_stats().await.unwrap();
    let queries = after["by_kind"]["query"].as_u64().unwrap_or(0) - before["by_kind"]["query"].as_u64().unwrap_or(0);
    let runtime = env.runtime("stats").await.unwrap();
    let invocations = runtime["functions"]["SyncWorkerFunction"]["invocations"].as_u64().unwrap();
    println!("sync-worker invocations {invocations}, Salesforce queries {queries}, stats {after}");
    assert!(queries <= 2 * invocations, "{queries} queries for {invocations} invocations");

    // The review queue lists the ambiguous learners with their candidates.
    let (status, review) = env.admin(Method::GET, "/admin/tenants/acme/review", None).await.unwrap();
    assert_eq!(status, 200, "{review}");
    let items = review["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{review}");
    let first = items.iter().find(|it| it["learner_id"] == id(20)).unwrap();
    assert_eq!(first["candidates"].as_array().unwrap().len(), 2);
    let chosen = first["candidates"][1].as_str().unwrap().to_string();
    let (status, v) = env
        .admin(
            Method::POST,
            &format!("/admin/tenants/acme/review/{}/resolve", id(20)),
            Some(json!({"contact_id": chosen})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    wait_for("the resolved learner's enrollment", Duration::from_secs(60), || async {
        Ok((env.sf_records("LMS_Enrollment__c").await?.len() == 56).then_some(()))
    })
    .await
    .unwrap();
    let contact = env.sf_records("Contact").await.unwrap().into_iter().find(|c| c["Id"] == chosen.as_str()).unwrap();
    assert_eq!(contact["LMS_Learner_Id__c"].as_str(), Some(id(20).as_str()), "the admin's choice is linked");

    // Deactivated in the LMS: the next delivery about the learner unlinks its Contact.
    let gone = id(0);
    let contact_id = linked[&gone]["Id"].as_str().unwrap().to_string();
    let r = env
        .http
        .post(format!("{}/api/v1/learners/{gone}/deactivate", env.endpoints.lms_url))
        .bearer_auth(LMS_KEY)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let their: Vec<String> = enrollments
        .iter()
        .filter(|e| e["Contact__c"].as_str() == Some(contact_id.as_str()))
        .map(|e| e["LMS_Enrollment_Id__c"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(their.len(), 1);
    // The LMS then sends a change of one of the learner's enrollments.
    let e = all_enrollments.iter().find(|e| e["id"] == their[0].as_str()).unwrap();
    let mut data = e.clone();
    data["updated_at"] =
        json!(time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap());
    data["status"] = json!("expired");
    let body = json!({"events": [{"id": format!("evt-deactivated-{gone}"), "type": "enrollment.updated",
        "occurred_at": data["updated_at"], "data": data}]})
    .to_string();
    let r = env
        .http
        .post(format!("{}/acme/lms", env.endpoints.webhook_url))
        .header("learnlink-signature", learnlink_e2e::sign(SECRET, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    wait_for("the Contact unlinked", Duration::from_secs(60), || async {
        let c = env.sf_records("Contact").await?.into_iter().find(|c| c["Id"] == contact_id.as_str());
        Ok(c.filter(|c| c["LMS_Learner_Id__c"].is_null()).map(|_| ()))
    })
    .await
    .unwrap();
    // Every outcome is in the activity log.
    let (status, log) = env.admin(Method::GET, "/admin/tenants/acme/activity?outcome=unlinked", None).await.unwrap();
    assert_eq!(status, 200, "{log}");
    assert!(log.to_string().contains(&gone), "{log}");
}
