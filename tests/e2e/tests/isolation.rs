//! Tenant isolation on one stack (SPEC §0: "one deployment serves many
//! tenants, fully isolated from each other"). Two tenants, alpha and beta,
//! each with its own webhook secrets and its own Salesforce org (alpha the
//! stack's emulator, beta a second emulator process), and gamma on alpha's
//! org:
//! - a webhook to beta's URL signed with alpha's secret (or Skilljar token)
//!   is refused and enqueues nothing; path tricks do not reach beta;
//! - alpha's deliveries — even one whose body names beta — write into
//!   alpha's org only, and beta's deliveries with the very same event and
//!   enrollment ids are neither deduplicated against alpha's nor written
//!   into alpha's org;
//! - an OAuth state is bound to the tenant that started it: one tenant's
//!   state with another's authorization code is refused and stores nothing,
//!   and a `tenant` parameter on the callback changes nothing;
//! - the admin API reads and writes one tenant by the path only: beta's
//!   backfills, review queue, dead letters and activity never show alpha's,
//!   alpha's backfill cannot be read or cancelled, alpha's ambiguous learner
//!   not resolved and alpha's dead letter not replayed through beta's paths,
//!   and `..`, encoded, upper-case or query-string tenant names do not cross.
//!
//! - the health route `GET /health/{tenant}` answers only to the admin
//!   credential (no token, a wrong one or a tenant's webhook secret: 401), and
//!   only for the tenant its path names.
//!
//! Admin authentication is one operator credential for every tenant (IAM in
//! AWS, one bearer token locally: `learnlink_adapters::lambda::admin_authorized`),
//! for the admin API and the health route alike; there are no per-tenant admin
//! tokens to test against each other.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_core::job::{SyncJob, encode};
use learnlink_core::model::{Enrollment, EnrollmentStatus, TenantId};
use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent, thinkific};
use learnlink_e2e::{Env, Options, SfEmulator, raw_request, sign, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn secret(tenant: &str, source: &str) -> String {
    format!("whsec-iso-{tenant}-{source}-0123456789")
}

/// A tenant with a canonical, a Thinkific and a Skilljar source, its own secrets.
fn config(env: &Env, tenant: &str, org_url: &str, lms: bool) -> Value {
    let mut c = env.tenant_config(tenant, &secret(tenant, "lms"));
    c["salesforce"]["environment"] = json!({"my_domain": org_url});
    c["webhooks"]["sources"] = json!([
        {"name": "lms", "dialect": "canonical", "secrets": [secret(tenant, "lms")]},
        {"name": "thk", "dialect": "thinkific", "secrets": [secret(tenant, "thk")]},
        {"name": "sj", "dialect": "skilljar", "secrets": [secret(tenant, "sj")]},
    ]);
    if lms {
        c["lms"] = json!({"base_url": env.endpoints.lms_url, "api_key": learnlink_e2e::LMS_API_KEY});
    }
    c
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A canonical delivery: enrollment `E-iso-<n>` of `learners[n]`, event `evt-iso-<n>`.
fn delivery(learners: &[String], status: &str) -> String {
    let now = rfc3339(OffsetDateTime::now_utc());
    let events: Vec<Value> = learners
        .iter()
        .enumerate()
        .map(|(n, l)| {
            json!({"id": format!("evt-iso-{n}"), "type": "enrollment.updated", "occurred_at": now,
                   "data": {"id": format!("E-iso-{n}"), "learner_id": l, "course_id": "C001", "status": status,
                            "progress_pct": 50, "updated_at": now}})
        })
        .collect();
    json!({ "events": events }).to_string()
}

/// A refused delivery: what, path, headers, body, status, error code.
type Refused<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a str, u16, Value);

async fn post(env: &Env, path: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut h: Vec<(&str, String)> = vec![("content-type", "application/json".into())];
    h.extend(headers.iter().cloned());
    let r = raw_request(&env.endpoints.api_url, "POST", path, &h, body.as_bytes()).await.unwrap();
    (r.status, r.json())
}

async fn admin_raw(env: &Env, method: &str, path: &str, body: &str) -> (u16, Value) {
    let h = [("authorization", format!("Bearer {}", env.admin_token)), ("content-type", "application/json".into())];
    let r = raw_request(&env.endpoints.api_url, method, path, &h, body.as_bytes()).await.unwrap();
    (r.status, r.json())
}

/// Start a tenant's OAuth flow and let its org approve it: the callback URL
/// (state and code), not yet visited.
async fn authorized_callback(env: &Env, tenant: &str) -> url::Url {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.get(env.connect_url(tenant)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302, "{tenant}: {}", r.text().await.unwrap());
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    let r = client.get(&authorize).send().await.unwrap();
    let back = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    url::Url::parse(&back.unwrap_or_else(|| panic!("{tenant}'s org did not send the browser back: {authorize}")))
        .unwrap()
}

fn param(u: &url::Url, name: &str) -> String {
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

async fn callback(env: &Env, query: &[(&str, &str)]) -> (u16, String) {
    let mut u = url::Url::parse(&format!("{}/oauth/callback", env.endpoints.api_url)).unwrap();
    u.query_pairs_mut().extend_pairs(query);
    let r = env.http.get(u).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `LMS_Enrollment_Id__c` → `Status__c` of an org's enrollments.
async fn enrollments(env: &Env, org: &str) -> BTreeMap<String, String> {
    env.sf_records_in(org, "LMS_Enrollment__c")
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (r["LMS_Enrollment_Id__c"].as_str().unwrap().to_string(), r["Status__c"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

async fn activity(env: &Env, tenant: &str) -> Vec<Value> {
    let (s, v) = env.admin(Method::GET, &format!("/admin/tenants/{tenant}/activity?limit=1000"), None).await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tenant"], tenant);
    v["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn tenants_never_see_or_write_each_others_data() {
    let started = Instant::now();
    let opts = Options {
        parameters: vec![
            ("HealthScheduleExpression".into(), "rate(1 day)".into()),
            ("ImportScheduleExpression".into(), "rate(1 day)".into()),
        ],
        ..Options::default()
    };
    let env = Env::start("isolation", opts).unwrap();
    let org_a = env.endpoints.salesforce_url.clone();
    let org_b_emulator = SfEmulator::start().unwrap();
    let org_b = org_b_emulator.url.clone();

    // The LMS's learners; both orgs track three of them by the same learner ids.
    env.lms_dataset(12, 2).await.unwrap();
    let mut learners: Vec<Value> =
        env.lms_all("learners").await.unwrap().into_iter().filter(|l| l["active"] == true).collect();
    learners.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    assert!(learners.len() >= 6, "{learners:?}");
    let id = |i: usize| learners[i]["id"].as_str().unwrap().to_string();
    let shared: Vec<String> = (0..3).map(id).collect();
    // alpha's org: a Contact per learner, except learner 5, whose email two Contacts carry.
    let ambiguous = id(5);
    let mut contacts_a = Vec::new();
    for l in &learners {
        if l["id"] == ambiguous.as_str() {
            for n in ["A", "B"] {
                contacts_a.push(json!({"LastName": format!("Twin {n}"), "Email": l["email"]}));
            }
        } else {
            contacts_a.push(json!({"LastName": l["last_name"], "Email": l["email"], "LMS_Learner_Id__c": l["id"]}));
        }
    }
    env.sf_insert_into(&org_a, "Contact", &contacts_a).await.unwrap();
    let contacts_b: Vec<Value> = shared
        .iter()
        .map(|l| json!({"LastName": format!("Beta {l}"), "Email": format!("{l}@beta.example"), "LMS_Learner_Id__c": l}))
        .collect();
    env.sf_insert_into(&org_b, "Contact", &contacts_b).await.unwrap();

    for (t, org, lms) in [("alpha", &org_a, true), ("beta", &org_b, false), ("gamma", &org_a, false)] {
        let (s, v) = env
            .admin(Method::POST, "/admin/tenants", Some(json!({"id": t, "config": config(&env, t, org, lms)})))
            .await
            .unwrap();
        assert_eq!(s, 201, "{t}: {v}");
    }

    // ---- OAuth: a state is bound to the tenant that started it -----------------
    let cb_alpha = authorized_callback(&env, "alpha").await;
    let cb_beta = authorized_callback(&env, "beta").await;
    let cb_gamma = authorized_callback(&env, "gamma").await;
    assert!(cb_beta.as_str().starts_with(&format!("{}/oauth/callback", env.endpoints.api_url)), "{cb_beta}");
    // alpha's state with the code beta's org issued: exchanged at alpha's org, refused.
    let (s, page) = callback(&env, &[("state", &param(&cb_alpha, "state")), ("code", &param(&cb_beta, "code"))]).await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("could not be completed"), "{page}");
    // gamma's state with the code alpha's (same) org issued for alpha's PKCE challenge: refused.
    let (s, page) = callback(&env, &[("state", &param(&cb_gamma, "state")), ("code", &param(&cb_alpha, "code"))]).await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("could not be completed"), "{page}");
    for t in ["alpha", "beta", "gamma"] {
        assert!(env.stored_tokens(t).await.is_err(), "{t} has no tokens");
        assert_eq!(env.status(t).await.unwrap()["cause"], "never_connected", "{t}");
    }
    // beta's own state and code, with a `tenant` parameter naming alpha: beta is connected, to its org.
    let (s, page) = callback(
        &env,
        &[("state", &param(&cb_beta, "state")), ("code", &param(&cb_beta, "code")), ("tenant", "alpha")],
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("tenant beta"), "{page}");
    assert!(env.stored_tokens("alpha").await.is_err(), "alpha is still not connected");
    assert_eq!(env.stored_tokens("beta").await.unwrap()["instance_url"], org_b.as_str());
    let tokens_a = env.connect_salesforce("alpha").await.unwrap();
    assert_eq!(tokens_a["instance_url"], org_a.as_str());
    let b_written_before = env.sf_records_in(&org_b, "LMS_Enrollment__c").await.unwrap().len();
    assert_eq!(b_written_before, 0);

    // ---- webhooks: another tenant's secret opens nothing ------------------------
    let body = delivery(&shared, "completed");
    let signed = |t: &str| vec![("Learnlink-Signature", sign(&secret(t, "lms"), &body))];
    let thk_body = json!({"id": "thk-iso-1", "resource": "enrollment", "action": "progress", "tenant_id": "beta",
        "created_at": rfc3339(OffsetDateTime::now_utc()),
        "payload": {"id": "T-iso-1", "user": {"id": id(3)}, "course": {"id": "C002", "name": "Course 2"},
                    "percentage_completed": "40.0", "updated_at": rfc3339(OffsetDateTime::now_utc())}})
    .to_string();
    let thk_signed =
        |t: &str| vec![("X-Thinkific-Hmac-Sha256", thinkific::sign(&secret(t, "thk"), thk_body.as_bytes()))];
    let refused: Vec<Refused<'_>> = vec![
        (
            "beta's URL, alpha's secret",
            "/webhooks/beta/lms".into(),
            signed("alpha"),
            &body,
            401,
            json!("invalid_signature"),
        ),
        (
            "alpha's URL, beta's secret",
            "/webhooks/alpha/lms".into(),
            signed("beta"),
            &body,
            401,
            json!("invalid_signature"),
        ),
        (
            "beta's Thinkific URL, alpha's secret",
            "/webhooks/beta/thk".into(),
            thk_signed("alpha"),
            &thk_body,
            401,
            json!("invalid_signature"),
        ),
        (
            "beta's Skilljar URL, alpha's token",
            format!("/webhooks/beta/sj/{}", secret("alpha", "sj")),
            vec![],
            "{}",
            401,
            json!("invalid_token"),
        ),
        (
            "beta's id percent-encoded, alpha's secret",
            "/webhooks/%62eta/lms".into(),
            signed("alpha"),
            &body,
            401,
            json!("invalid_signature"),
        ),
        (
            "beta in capitals, beta's secret",
            "/webhooks/BETA/lms".into(),
            signed("beta"),
            &body,
            404,
            json!("unknown_tenant"),
        ),
        (
            "an encoded traversal from alpha to beta",
            "/webhooks/alpha%2F..%2Fbeta/lms".into(),
            signed("alpha"),
            &body,
            404,
            json!("unknown_tenant"),
        ),
        (
            "a traversal from alpha to beta",
            "/webhooks/alpha/../beta/lms".into(),
            signed("alpha"),
            &body,
            404,
            Value::Null,
        ),
        (
            "beta's URL with alpha's source token segment",
            format!("/webhooks/beta/lms/{}", secret("alpha", "lms")),
            signed("alpha"),
            &body,
            404,
            json!("unknown_route"),
        ),
    ];
    for (what, path, headers, b, status, code) in &refused {
        let (s, v) = post(&env, path, headers, b).await;
        assert_eq!((s, &v["error"]["code"]), (*status, code), "{what}: {v}");
    }
    let depths = env.queue_depths().await.unwrap();
    assert!(depths.values().all(|n| *n == 0), "nothing enqueued: {depths:?}");
    assert_eq!(env.runtime("stats").await.unwrap()["functions"]["SyncWorkerFunction"]["invocations"], 0);

    // ---- webhooks: each tenant's deliveries land in its own org only ------------
    let (s, v) = post(&env, "/webhooks/alpha/lms", &signed("alpha"), &body).await;
    assert_eq!((s, v["accepted"].as_u64()), (202, Some(3)), "{v}");
    // The same event and enrollment ids, for beta: not duplicates of alpha's.
    let beta_body = delivery(&shared, "in_progress");
    let beta_signed = vec![("Learnlink-Signature", sign(&secret("beta", "lms"), &beta_body))];
    let (s, v) = post(&env, "/webhooks/beta/lms", &beta_signed, &beta_body).await;
    assert_eq!((s, v["accepted"].as_u64(), v["duplicates"].as_u64()), (202, Some(3), Some(0)), "{v}");
    // A delivery to alpha whose body names beta (Thinkific's tenant_id).
    let (s, v) = post(&env, "/webhooks/alpha/thk", &thk_signed("alpha"), &thk_body).await;
    assert_eq!(s, 202, "{v}");
    let want_a: BTreeMap<String, String> = (0..3)
        .map(|n| (format!("E-iso-{n}"), "Completed".to_string()))
        .chain([("T-iso-1".to_string(), "In Progress".to_string())])
        .collect();
    let want_b: BTreeMap<String, String> = (0..3).map(|n| (format!("E-iso-{n}"), "In Progress".to_string())).collect();
    wait_for("each org's enrollments", Duration::from_secs(90), || async {
        let (a, b) = (enrollments(&env, &org_a).await, enrollments(&env, &org_b).await);
        Ok((a.len() >= want_a.len() && b.len() >= want_b.len()).then_some(()))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(enrollments(&env, &org_a).await, want_a, "alpha's org holds alpha's records, as alpha sent them");
    assert_eq!(enrollments(&env, &org_b).await, want_b, "beta's org holds beta's records only");
    // Each tenant's log: its own outcomes, once each.
    for (t, ids) in
        [("alpha", want_a.keys().cloned().collect::<BTreeSet<_>>()), ("beta", want_b.keys().cloned().collect())]
    {
        let entries = activity(&env, t).await;
        let seen: Vec<String> = entries.iter().map(|e| e["lms_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), ids, "{t}: {entries:#?}");
        assert_eq!(seen.len(), ids.len(), "{t}: one outcome per record: {entries:#?}");
        assert!(entries.iter().all(|e| e["outcome"] == "created"), "{t}: {entries:#?}");
    }

    // ---- alpha's backfill, review item and dead letter ----------------------------
    let (s, v) = env.start_backfill("alpha", json!({"since": "2000-01-01T00:00:00Z"})).await.unwrap();
    assert_eq!(s, 202, "{v}");
    let backfill = v["backfill"]["id"].as_str().unwrap().to_string();
    let done = env.wait_backfill("alpha", &backfill, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done["backfill"]["status"], "completed", "{done}");
    let review = wait_for("alpha's ambiguous learner in review", Duration::from_secs(60), || async {
        let (_, v) = env.admin(Method::GET, "/admin/tenants/alpha/review", None).await?;
        Ok(v["items"].as_array().filter(|i| !i.is_empty()).cloned())
    })
    .await
    .unwrap();
    assert_eq!(review[0]["learner_id"], ambiguous.as_str(), "{review:?}");
    let candidate = review[0]["candidates"][0].as_str().unwrap().to_string();
    let t = OffsetDateTime::now_utc();
    let letter = encode(&SyncJob::LmsEvent {
        tenant: TenantId::parse("alpha").unwrap(),
        source: "lms".into(),
        event: LmsEvent {
            id: "evt-iso-dead".into(),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: "E-iso-dead".into(),
                learner_id: id(0),
                course_id: "C003".into(),
                course_title: None,
                status: EnrollmentStatus::InProgress,
                progress_pct: Some(10.0),
                score: None,
                enrolled_at: None,
                completed_at: None,
                updated_at: t,
            }),
        },
    });
    env.sqs()
        .await
        .send_message()
        .queue_url(env.queue_url("SyncDeadLetterQueue"))
        .message_body(letter)
        .send()
        .await
        .unwrap();
    let (_, v) = env.admin(Method::GET, "/admin/tenants/alpha/dlq", None).await.unwrap();
    let message_id = v["messages"][0]["message_id"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();

    // ---- the admin API: beta's paths never reach alpha's data ----------------------
    let (s, v) = env.admin(Method::GET, "/admin/tenants/beta/backfills", None).await.unwrap();
    assert_eq!((s, v["backfills"].clone()), (200, json!([])), "{v}");
    let (s, v) = env.admin(Method::GET, &format!("/admin/tenants/beta/backfills/{backfill}"), None).await.unwrap();
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("backfill_not_found")), "{v}");
    let (s, v) =
        env.admin(Method::POST, &format!("/admin/tenants/beta/backfills/{backfill}/cancel"), None).await.unwrap();
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("backfill_not_found")), "{v}");
    assert_eq!(env.backfill("alpha", &backfill).await.unwrap()["backfill"]["status"], "completed");
    let (s, v) = env.admin(Method::GET, "/admin/tenants/beta/review", None).await.unwrap();
    assert_eq!((s, v["items"].clone()), (200, json!([])), "{v}");
    let (s, v) = env
        .admin(
            Method::POST,
            &format!("/admin/tenants/beta/review/{ambiguous}/resolve"),
            Some(json!({"contact_id": candidate})),
        )
        .await
        .unwrap();
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("unknown_learner")), "{v}");
    let (_, v) = env.admin(Method::GET, "/admin/tenants/alpha/review", None).await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "alpha's item is still held: {v}");
    let (s, v) = env.admin(Method::GET, "/admin/tenants/beta/dlq", None).await.unwrap();
    assert_eq!((s, v["messages"].clone()), (200, json!([])), "{v}");
    let (s, v) = env
        .admin(Method::POST, "/admin/tenants/beta/dlq/replay", Some(json!({"message_ids": [message_id]})))
        .await
        .unwrap();
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("unknown_message")), "{v}");
    let (s, v) = env.admin(Method::POST, "/admin/tenants/beta/dlq/replay", None).await.unwrap();
    assert_eq!((s, v["replayed"].clone()), (200, json!(0)), "{v}");
    let (_, v) = env.admin(Method::GET, "/admin/tenants/alpha/dlq", None).await.unwrap();
    assert_eq!(v["messages"][0]["message_id"], message_id.as_str(), "alpha's dead letter stays: {v}");
    assert_eq!(env.queue_depth("SyncQueue").await.unwrap(), 0, "nothing was replayed");
    let beta_log = activity(&env, "beta").await;
    assert_eq!(beta_log.len(), 3, "beta's log has none of alpha's backfill: {beta_log:#?}");

    // Path tricks: the tenant is the path's segment, exactly.
    let config_of = |v: &Value| v["tenant"].as_str().map(str::to_string);
    for (what, method, path, status, code, tenant) in [
        ("a traversal from alpha to beta", "GET", "/admin/tenants/alpha/../beta/config", 404, Some("not_found"), None),
        ("an encoded traversal", "GET", "/admin/tenants/alpha%2F..%2Fbeta/config", 404, Some("unknown_tenant"), None),
        ("beta percent-encoded", "GET", "/admin/tenants/%62eta/config", 404, Some("unknown_tenant"), None),
        ("beta in capitals", "GET", "/admin/tenants/BETA/config", 404, Some("unknown_tenant"), None),
        ("beta with a dot segment", "GET", "/admin/tenants/./beta/config", 404, Some("not_found"), None),
        ("a trailing slash", "GET", "/admin/tenants/beta/config/", 200, None, Some("beta")),
        ("a query naming beta", "GET", "/admin/tenants/alpha/config?tenant=beta", 200, None, Some("alpha")),
        ("a query naming beta, activity", "GET", "/admin/tenants/alpha/activity?tenant=beta", 200, None, Some("alpha")),
        ("a traversal, review", "GET", "/admin/tenants/beta/../alpha/review", 404, Some("not_found"), None),
        ("a traversal, backfill start", "POST", "/admin/tenants/alpha/../beta/backfills", 404, Some("not_found"), None),
        (
            "an encoded traversal, backfill start",
            "POST",
            "/admin/tenants/alpha%2F..%2Fbeta/backfills",
            404,
            Some("unknown_tenant"),
            None,
        ),
        ("a traversal, PUT config", "PUT", "/admin/tenants/alpha/../beta/config", 404, Some("not_found"), None),
        ("a traversal, dlq replay", "POST", "/admin/tenants/beta/../alpha/dlq/replay", 404, Some("not_found"), None),
    ] {
        let body = match method {
            "PUT" => config(&env, "beta", &org_a, false).to_string(),
            "POST" => r#"{"since": "2000-01-01T00:00:00Z"}"#.to_string(),
            _ => String::new(),
        };
        let (s, v) =
            admin_raw(&env, method, path, if method == "POST" && path.contains("dlq") { "" } else { &body }).await;
        assert_eq!(s, status, "{what}: {v}");
        if let Some(code) = code {
            assert_eq!(v["error"]["code"], code, "{what}: {v}");
        }
        if let Some(t) = tenant {
            assert_eq!(config_of(&v).as_deref(), Some(t), "{what}: {v}");
        }
    }
    // Nothing of that changed beta, or sent alpha's dead letter anywhere.
    let (_, v) = env.admin(Method::GET, "/admin/tenants/beta/config/versions", None).await.unwrap();
    assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = env.admin(Method::GET, "/admin/tenants/beta/backfills", None).await.unwrap();
    assert_eq!(v["backfills"], json!([]));
    let (_, v) = env.admin(Method::GET, "/admin/tenants/alpha/dlq", None).await.unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1, "{v}");
    // The health route (a tenant's status, integration user, rights, failures, gaps) takes
    // the admin credential like the admin API: without it, with a wrong one, or with a
    // tenant's own webhook secret or Skilljar token, 401 before anything is read. With it,
    // it answers for the tenant its path names, only.
    for t in ["alpha", "beta", "gamma"] {
        let path = format!("/health/{t}");
        let refused: [(&str, Vec<(&str, String)>); 5] = [
            ("no token", vec![]),
            ("a wrong token", vec![("authorization", "Bearer wrong-token".into())]),
            (
                "the admin token with one more character",
                vec![("authorization", format!("Bearer {}x", env.admin_token))],
            ),
            ("its own webhook secret", vec![("authorization", format!("Bearer {}", secret(t, "lms")))]),
            ("another tenant's Skilljar token", vec![("authorization", format!("Bearer {}", secret("alpha", "sj")))]),
        ];
        for (what, headers) in refused {
            let r = raw_request(&env.endpoints.api_url, "GET", &path, &headers, b"").await.unwrap();
            let v = r.json();
            assert_eq!((r.status, v["error"]["code"].clone()), (401, json!("unauthorized")), "{t}, {what}: {v}");
            assert!(v.get("status").is_none() && v.get("integration_user").is_none(), "{t}, {what}: {v}");
        }
        let (s, v) = admin_raw(&env, "GET", &path, "").await;
        assert_eq!((s, v["tenant"].clone()), (200, json!(t)), "{v}");
    }
    let (s, v) = admin_raw(&env, "GET", "/health/alpha%2F..%2Fbeta", "").await;
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("unknown_tenant")), "{v}");

    // In the end beta's org holds beta's three records, written once each.
    assert_eq!(enrollments(&env, &org_b).await, want_b);
    let b_stats = env.get(&format!("{org_b}/__emulator/stats")).await.unwrap().1;
    assert_eq!(b_stats["records_written"], 3, "{b_stats}");
    let a_records = enrollments(&env, &org_a).await;
    for (k, v) in &want_a {
        assert_eq!(a_records.get(k), Some(v), "{k}");
    }
    println!("isolation: {:?}, alpha's org {} enrollments, beta's 3", started.elapsed(), a_records.len());
    drop(org_b_emulator);
}
