//! SOQL injection (SPEC §4.3 matching, `learnlink_core::soql`): learners
//! whose emails, names and Account names carry quotes, double quotes,
//! backslashes, Unicode (é, 漢字, emoji), `%`, `_`, newlines, control
//! characters and would-be injections (`x'OR'Email!='…`, `x' OR Name != '`,
//! `x'),('y`) go through job 1 on the local stack: the batch's one Contact
//! query (`Email IN (…)`) and one Account query (`Name IN (…)`, placement by
//! a learner field) reach the Salesforce emulator escaped, its SOQL parser
//! reads every one of them, and
//! - (a) each learner is linked to exactly the Contact seeded with its own
//!   email (never to a decoy), or gets a Contact created in exactly the
//!   Account named like its `fields.site`, with its names as given;
//! - (b) no query was refused (no MALFORMED_QUERY in any log, no failed,
//!   skipped or ambiguous outcome), and the very statements the worker
//!   builds, run again against the emulator, answer exactly those rows;
//! - (c) a `%`- or `_`-laden value matches itself only: the decoys a LIKE
//!   wildcard would catch (`1000@…` for `100%@…`, every address for `%@…`)
//!   stay unlinked, and an escaped LIKE pattern (`soql::quote_like`) finds
//!   the value alone where the same pattern unescaped finds the decoys.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_core::matching::{account_queries, contact_queries, normalize};
use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_core::soql;
use learnlink_e2e::{Env, Options, sign, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use time::OffsetDateTime;

const SECRET: &str = "whsec-soql-injection-0123456789";

/// Learners matched by email: each has a Contact with this exact address.
const HOSTILE_EMAILS: [&str; 15] = [
    "o'brien@example.test",
    "\"quoted\"@example.test",
    r"back\slash@example.test",
    r"trailing\@example.test",
    "x'OR'Email!='@example.test",
    r"a\'b@example.test",
    "x')OR(Email!='y@example.test",
    r"literal\u0027escape@example.test",
    "élodie.müller@exämple.test",
    "漢字@例え.test",
    "😀emoji@example.test",
    "100%@example.test",
    "a_b@example.test",
    "%@example.test",
    "ZOË.UPPER@EXAMPLE.TEST",
];

/// Contacts a wildcard or a broken-out literal would catch: never linked.
const DECOY_EMAILS: [&str; 7] = [
    "1000@example.test",
    "100abc@example.test",
    "axb@example.test",
    "obrien@example.test",
    "brien@example.test",
    "y@example.test",
    "other@exämple.test",
];

/// Learners placed by `fields.site`: an Account of this exact name exists.
const HOSTILE_SITES: [&str; 14] = [
    "Bob's \"BBQ\"",
    r"C:\temp\new",
    "x' OR Name != '",
    "x'),('y",
    "line1\nline2",
    "tab\there",
    "bell\u{7}ring",
    "漢字 株式会社",
    "😀 Emoji Corp",
    "Café Ünïcödé",
    "100% Pure_Co",
    r"trailing\",
    r"literal \u0027 and \n",
    "%",
];

/// Accounts a wildcard or a broken-out literal would catch.
const DECOY_SITES: [&str; 6] = ["Bob", "y", "1000 PureXCo", "C:", "line1", "Anything"];

/// Hostile first and last names for the created Contacts.
fn names(i: usize) -> (String, String) {
    let first = ["O'Brien \"Bob\"", "Zoë", "漢字", "😀", r"Back\slash", "Ñandú%_"][i % 6];
    let last = ["Smith'); DELETE", "Line\nBreak", r"Tab\tEscaped", "Émoji 😀", "x' OR LastName != '", "_%"][i % 6];
    (first.to_string(), format!("{last} {i}"))
}

async fn sf_insert(env: &Env, sobject: &str, records: Vec<Value>) -> Vec<String> {
    env.sf_insert_into(&env.endpoints.salesforce_url, sobject, &records).await.unwrap()
}

/// A query through the emulator's REST API with the tenant's session: the rows.
async fn query(env: &Env, tokens: &Value, q: &str) -> Result<Vec<Value>, (u16, Value)> {
    let url = format!(
        "{}/services/data/{}/query",
        tokens["instance_url"].as_str().unwrap(),
        learnlink_core::salesforce::API_VERSION
    );
    let r = env
        .http
        .get(url)
        .query(&[("q", q)])
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Err((status, v));
    }
    assert!(v["done"].as_bool().unwrap(), "one page: {v}");
    Ok(v["records"].as_array().unwrap().clone())
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(|r| r["Id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn hostile_emails_and_names_reach_salesforce_escaped_and_match_only_themselves() {
    let env = Env::start("soql-injection", Options::default()).unwrap();
    env.lms_dataset(1, 1).await.unwrap();

    // The LMS's learners: by email, then by site.
    let mut learners: Vec<(String, Value)> = Vec::new();
    for (i, email) in HOSTILE_EMAILS.iter().enumerate() {
        let l = env
            .lms_create_learner(json!({"email": email, "first_name": "Mail", "last_name": format!("Learner {i}")}))
            .await
            .unwrap();
        assert_eq!(l["email"], *email, "the LMS keeps the address as given");
        learners.push((l["id"].as_str().unwrap().to_string(), l));
    }
    for (i, site) in HOSTILE_SITES.iter().enumerate() {
        let (first, last) = names(i);
        let l = env
            .lms_create_learner(json!({"email": format!("site{i}@placed.example"), "first_name": first,
                                       "last_name": last, "fields": {"site": site}}))
            .await
            .unwrap();
        learners.push((l["id"].as_str().unwrap().to_string(), l));
    }

    // Salesforce: a Contact per hostile email (not linked yet), the decoys,
    // an Account per hostile site and the decoy Accounts.
    let contact_ids = sf_insert(
        &env,
        "Contact",
        HOSTILE_EMAILS.iter().enumerate().map(|(i, e)| json!({"LastName": format!("Own {i}"), "Email": e})).collect(),
    )
    .await;
    let own_contact: HashMap<&str, String> = HOSTILE_EMAILS.iter().copied().zip(contact_ids).collect();
    let decoys = sf_insert(
        &env,
        "Contact",
        DECOY_EMAILS.iter().enumerate().map(|(i, e)| json!({"LastName": format!("Decoy {i}"), "Email": e})).collect(),
    )
    .await;
    let account_ids = sf_insert(&env, "Account", HOSTILE_SITES.iter().map(|n| json!({"Name": n})).collect()).await;
    let account_of: HashMap<&str, String> = HOSTILE_SITES.iter().copied().zip(account_ids).collect();
    sf_insert(&env, "Account", DECOY_SITES.iter().map(|n| json!({"Name": n})).collect()).await;
    let accounts_before = env.sf_records("Account").await.unwrap().len();

    let sync = json!({"create_contacts": true,
                      "account_placement": {"rule": "learner_field", "learner_field": "fields.site"}});
    env.create_tenant_with_lms("acme", SECRET, sync).await.unwrap();
    let tokens = env.connect_salesforce("acme").await.unwrap();
    let before = env.sf_stats().await.unwrap();

    // One delivery: an enrollment of every learner, one batch for the worker.
    let now = OffsetDateTime::now_utc();
    let events: Vec<Value> = learners
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let e = Enrollment {
                id: format!("E-inj-{i}"),
                learner_id: id.clone(),
                course_id: "C001".into(),
                course_title: Some("Security 101".into()),
                status: EnrollmentStatus::Enrolled,
                progress_pct: Some(0.0),
                score: None,
                enrolled_at: Some(now),
                completed_at: None,
                updated_at: now,
            };
            json!({"id": format!("evt-inj-{i}"), "type": "enrollment.created",
                   "occurred_at": now.format(&time::format_description::well_known::Rfc3339).unwrap(),
                   "data": serde_json::to_value(e).unwrap()})
        })
        .collect();
    let body = json!({ "events": events }).to_string();
    let (s, v) = env
        .post_webhook(
            "acme/lms",
            &body,
            &[("learnlink-signature", sign(SECRET, &body)), ("content-type", "application/json".into())],
        )
        .await
        .unwrap();
    assert_eq!((s, v["accepted"].as_u64()), (202, Some(learners.len() as u64)), "{v}");
    let records = wait_for("every learner's enrollment", Duration::from_secs(90), || async {
        let r = env.sf_records("LMS_Enrollment__c").await?;
        Ok((r.len() >= learners.len()).then_some(r))
    })
    .await;
    let log = env.admin(Method::GET, "/admin/tenants/acme/activity?limit=1000", None).await.unwrap().1;
    let records = records.unwrap_or_else(|e| panic!("{e}; activity: {log:#}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.sf_records("LMS_Enrollment__c").await.unwrap().len(), learners.len());

    // (b) Nothing was refused or held: no failed, skipped or ambiguous outcome,
    // no MALFORMED_QUERY anywhere, nothing in review.
    let log = env.admin(Method::GET, "/admin/tenants/acme/activity?limit=1000", None).await.unwrap().1;
    let entries = log["entries"].as_array().unwrap();
    let bad: Vec<&Value> = entries
        .iter()
        .filter(|e| ["failed", "skipped", "ambiguous"].contains(&e["outcome"].as_str().unwrap()))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    let malformed = env.log_lines_containing(&["MALFORMED_QUERY", "INVALID_QUERY_FILTER_OPERATOR"]).unwrap();
    assert!(malformed.is_empty(), "{malformed:#?}");
    let (_, review) = env.admin(Method::GET, "/admin/tenants/acme/review", None).await.unwrap();
    assert_eq!(review["items"], json!([]), "{review}");
    // The batch cost at most one Contact and one Account query per worker invocation.
    let after = env.sf_stats().await.unwrap();
    let queries = after["by_kind"]["query"].as_u64().unwrap_or(0) - before["by_kind"]["query"].as_u64().unwrap_or(0);
    let invocations =
        env.runtime("stats").await.unwrap()["functions"]["SyncWorkerFunction"]["invocations"].as_u64().unwrap();
    assert!(queries >= 2 && queries <= 2 * invocations, "{queries} queries, {invocations} invocations");

    // (a) Each learner's enrollment hangs on its own Contact.
    let contacts: HashMap<String, Value> = env
        .sf_records("Contact")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c["Id"].as_str().unwrap().to_string(), c))
        .collect();
    let by_enrollment: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r["LMS_Enrollment_Id__c"].as_str().unwrap(), r["Contact__c"].as_str().unwrap_or("")))
        .collect();
    for (i, (learner, l)) in learners.iter().enumerate() {
        let contact = &contacts[by_enrollment[format!("E-inj-{i}").as_str()]];
        assert_eq!(contact["LMS_Learner_Id__c"], learner.as_str(), "{l}: {contact}");
        if i < HOSTILE_EMAILS.len() {
            // Matched by email: linked to the Contact seeded with it, none created.
            let email = HOSTILE_EMAILS[i];
            assert_eq!(contact["Id"], own_contact[email].as_str(), "{email:?} linked to {contact}");
            assert_eq!(contact["Email"], email);
        } else {
            // Created in the Account named exactly like its site, with its names.
            let site = HOSTILE_SITES[i - HOSTILE_EMAILS.len()];
            assert_eq!(contact["AccountId"], account_of[site].as_str(), "{site:?}: {contact}");
            assert_eq!(contact["FirstName"], l["first_name"], "{contact}");
            assert_eq!(contact["LastName"], l["last_name"], "{contact}");
            assert_eq!(contact["Email"], l["email"], "{contact}");
        }
    }
    // (c) The decoys stay as they were; no Contact is a duplicate; no Account was created.
    for d in &decoys {
        assert!(contacts[d]["LMS_Learner_Id__c"].is_null(), "decoy linked: {}", contacts[d]);
    }
    assert_eq!(contacts.len(), HOSTILE_EMAILS.len() + DECOY_EMAILS.len() + HOSTILE_SITES.len());
    assert_eq!(env.sf_records("Account").await.unwrap().len(), accounts_before);

    // (b) again, at the source: the statements the worker builds for this
    // batch parse, and answer exactly the rows they should.
    let values: Vec<String> = {
        let mut v: Vec<String> = HOSTILE_EMAILS.iter().map(|e| normalize(e)).collect();
        v.sort();
        v.dedup();
        v
    };
    let value_refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let learner_ids: Vec<&str> = learners.iter().map(|(id, _)| id.as_str()).collect();
    let statements = contact_queries("Email", &learner_ids, &value_refs).unwrap();
    let mut found = BTreeSet::new();
    for q in &statements {
        let rows = query(&env, &tokens, q).await.unwrap_or_else(|e| panic!("{q}: {e:?}"));
        found.extend(ids(&rows));
    }
    let mut expected: BTreeSet<String> = own_contact.values().cloned().collect();
    expected.extend(
        contacts
            .values()
            .filter(|c| c["AccountId"].is_string() && c["LMS_Learner_Id__c"].is_string())
            .map(|c| c["Id"].as_str().unwrap().to_string()),
    );
    assert_eq!(found, expected, "the Contact lookup finds the learners' own Contacts and no decoy");
    let sites: Vec<&str> = HOSTILE_SITES.to_vec();
    let mut found = BTreeSet::new();
    for q in account_queries(&sites).unwrap() {
        let rows = query(&env, &tokens, &q).await.unwrap_or_else(|e| panic!("{q}: {e:?}"));
        found.extend(ids(&rows));
    }
    assert_eq!(found, account_of.values().cloned().collect::<BTreeSet<_>>(), "the Account lookup finds no decoy");

    // One value at a time: `=` and an escaped LIKE find the value's own row only.
    for email in HOSTILE_EMAILS {
        for q in [
            format!("SELECT Id FROM Contact WHERE Email = {}", soql::quote(email)),
            format!("SELECT Id FROM Contact WHERE Email LIKE {}", soql::quote_like(email)),
            format!("SELECT Id FROM Contact WHERE Email IN {}", soql::in_list([email, "nobody@nowhere.test"]).unwrap()),
        ] {
            let rows = query(&env, &tokens, &q).await.unwrap_or_else(|e| panic!("{q}: {e:?}"));
            assert_eq!(ids(&rows), BTreeSet::from([own_contact[email].clone()]), "{q}");
        }
    }
    for site in HOSTILE_SITES {
        let q = format!("SELECT Id FROM Account WHERE Name = {}", soql::quote(site));
        let rows = query(&env, &tokens, &q).await.unwrap_or_else(|e| panic!("{q:?}: {e:?}"));
        assert_eq!(ids(&rows), BTreeSet::from([account_of[site].clone()]), "{q:?}");
        let q = format!("SELECT Id FROM Account WHERE Name LIKE {}", soql::quote_like(site));
        let rows = query(&env, &tokens, &q).await.unwrap_or_else(|e| panic!("{q:?}: {e:?}"));
        assert_eq!(ids(&rows), BTreeSet::from([account_of[site].clone()]), "{q:?}");
    }
    // The decoys are real catches: the same patterns unescaped find them.
    let decoy_of: BTreeMap<&str, &String> = DECOY_EMAILS.iter().copied().zip(&decoys).collect();
    for (pattern, catches) in [
        ("'100%@example.test'", "1000@example.test"),
        ("'a_b@example.test'", "axb@example.test"),
        ("'%@example.test'", "y@example.test"),
    ] {
        let rows = query(&env, &tokens, &format!("SELECT Id FROM Contact WHERE Email LIKE {pattern}")).await.unwrap();
        assert!(ids(&rows).contains(decoy_of[catches]), "{pattern} catches {catches}");
    }
    // An unescaped quote is SOQL, not data: refused, or a different question.
    let (status, err) =
        query(&env, &tokens, "SELECT Id FROM Contact WHERE Email = 'o'brien@example.test'").await.unwrap_err();
    assert_eq!((status, err[0]["errorCode"].as_str()), (400, Some("MALFORMED_QUERY")), "{err}");
    let rows = query(&env, &tokens, "SELECT Id FROM Contact WHERE Email = 'x' OR Email != ''").await.unwrap();
    assert!(rows.len() > 1, "unescaped, the injection would match every Contact");
    println!(
        "{} learners, {} queries by the worker in {} invocations, {} statements replayed",
        learners.len(),
        queries,
        invocations,
        statements.len()
    );
}
