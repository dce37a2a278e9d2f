//! An in-process mock of the admin API (infra/openapi.yaml) on 127.0.0.1:0,
//! with the same shapes, codes and rules as functions/admin-api, and a
//! runner for the real `learnlink` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use learnlink_core::activity::{ActivityEntry, ActivityFilter, Direction, Outcome, to_csv};
use learnlink_core::backfill::{
    Backfill, BackfillOptions, BackfillStatus, KillSwitch, Origin, Progress, Shard, ShardCounts, ShardStatus, Window,
    valid_id,
};
use learnlink_core::config::{Violation, diff, strip_secrets, validate};
use learnlink_core::model::TenantId;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;

/// The admin token of the mock: it must never appear in any output.
pub const TOKEN: &str = "ll-admin-test-9f8e7d6c5b4a3928";
/// A webhook secret used in the tests: it must never appear in any output either.
pub const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef-SECRET";

pub struct StoredTenant {
    pub versions: Vec<(Value, OffsetDateTime)>,
    pub secrets: BTreeMap<String, Vec<String>>,
    pub created_at: OffsetDateTime,
}

#[derive(Default)]
pub struct MockState {
    pub tenants: BTreeMap<String, StoredTenant>,
    /// Every request: "METHOD path?query [if-match: N]".
    pub log: Vec<String>,
    pub activity: HashMap<String, Vec<ActivityEntry>>,
    /// The review queue per tenant, in learner-id order.
    pub review: HashMap<String, Vec<Value>>,
    /// (tenant, learner, contact) of every successful resolve.
    pub resolved: Vec<(String, String, String)>,
    /// The dead-letter queue: messages with their tenant (null: unreadable).
    pub dlq: Vec<Value>,
    /// The body of every replay request (null: none).
    pub replays: Vec<Value>,
    /// Backfills per tenant, oldest first.
    pub backfills: HashMap<String, Vec<MockBackfill>>,
    /// The body of every backfill start request.
    pub starts: Vec<Value>,
}

/// A backfill of the mock: what the API shows, and what the next reads of
/// it show (one step per `GET …/backfills/{id}`; the last one stays).
pub struct MockBackfill {
    pub backfill: Backfill,
    pub progress: Progress,
    pub script: VecDeque<(BackfillStatus, Progress, Option<String>)>,
}

impl MockBackfill {
    fn view(&self) -> Value {
        json!({"backfill": self.backfill, "progress": self.progress})
    }
}

type Shared = Arc<Mutex<MockState>>;
type Secrets = BTreeMap<String, Vec<String>>;

pub struct Mock {
    pub url: String,
    pub state: Shared,
}

impl Mock {
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
    pub fn current(&self, tenant: &str) -> (u64, Value) {
        let s = self.state.lock().unwrap();
        let t = &s.tenants[tenant];
        (t.versions.len() as u64, t.versions.last().unwrap().0.clone())
    }
    /// A tenant whose every route answers 503 (a store is down).
    pub fn add_down_tenant(&self) {
        let t0 = datetime!(2026-11-01 09:00 UTC);
        let down = json!({"name": "Down", "salesforce": {"environment": "production", "client_id": "3MVG9down"}});
        let t = StoredTenant { versions: vec![(down, t0)], secrets: BTreeMap::new(), created_at: t0 };
        self.state.lock().unwrap().tenants.insert("down".into(), t);
    }
    pub fn secrets(&self, tenant: &str) -> BTreeMap<String, Vec<String>> {
        self.state.lock().unwrap().tenants[tenant].secrets.clone()
    }
    /// What the next reads of a backfill show, one step per read.
    pub fn script(&self, tenant: &str, id: &str, steps: Vec<(BackfillStatus, Progress, Option<String>)>) {
        let mut s = self.state.lock().unwrap();
        let b = s.backfills.get_mut(tenant).unwrap().iter_mut().find(|b| b.backfill.id == id).unwrap();
        b.script = steps.into();
    }
    /// The backfill as the mock holds it now.
    pub fn backfill(&self, tenant: &str, id: &str) -> Backfill {
        let s = self.state.lock().unwrap();
        s.backfills[tenant].iter().find(|b| b.backfill.id == id).unwrap().backfill.clone()
    }
}

/// acme's completed backfill (the older one).
pub const DONE_ID: &str = "bf-20261120T090000-done1";
/// acme's running backfill (the newest).
pub const RUNNING_ID: &str = "bf-20261123T095000-run2";
/// beta's running backfill.
pub const BETA_ID: &str = "bf-20261122T080000-beta1";

/// A progress with these numbers (the rest zero).
pub fn progress(
    percent: f64,
    done: u32,
    total: u32,
    written: u64,
    failed: u64,
    calls: u64,
    eta: Option<u64>,
) -> Progress {
    Progress {
        shards_total: total,
        shards_done: done,
        shards_failed: 0,
        expected: u64::from(total) * 10_000,
        counts: ShardCounts {
            pages: u64::from(done) * 10,
            read: written + failed,
            created: written / 2,
            updated: written - written / 2,
            failed,
            handed_over: 0,
            stale: 0,
            api_calls: calls,
        },
        written,
        percent,
        elapsed_seconds: 600,
        eta_seconds: eta,
    }
}

pub fn mock_backfill(tenant: &str, id: &str, status: BackfillStatus, created_at: OffsetDateTime) -> Backfill {
    Backfill {
        id: id.into(),
        tenant: TenantId::parse(tenant).unwrap(),
        window: Window { since: datetime!(2026-01-01 0:00 UTC), until: datetime!(2026-11-01 0:00 UTC) },
        origin: Origin::Admin,
        options: BackfillOptions { only_changed: false, bulk_threshold: 2_000, shard_size: 10_000 },
        status,
        kill_switch: if status.is_final() {
            KillSwitch::Restored { previous: Some(false) }
        } else {
            KillSwitch::Engaged { previous: Some(false) }
        },
        expected: 200_000,
        shards: 20,
        skipped: Vec::new(),
        budget: None,
        created_at,
        updated_at: created_at,
        finished_at: status.is_final().then_some(created_at + time::Duration::minutes(42)),
        paused_at: None,
        reason: None,
    }
}

pub fn acme_v1() -> Value {
    json!({
        "name": "Acme Corp",
        "salesforce": {"environment": "sandbox", "client_id": "3MVG9acme"},
        "webhooks": {"sources": [{"name": "lms", "dialect": "canonical"}]},
        "sync": {"create_contacts": false}
    })
}

pub fn acme_v2() -> Value {
    json!({
        "name": "Acme Corp",
        "salesforce": {"environment": "sandbox", "client_id": "3MVG9acme"},
        "webhooks": {"sources": [{"name": "lms", "dialect": "canonical"}]},
        "sync": {"create_contacts": false, "matching_field": "Email"},
        "import": {"schedule": "rate(1 day)"}
    })
}

fn entries() -> Vec<ActivityEntry> {
    let outcomes = [Outcome::Created, Outcome::Updated, Outcome::Failed, Outcome::Skipped, Outcome::Linked];
    (0..25)
        .map(|i: i64| {
            let outcome = outcomes[(i as usize) % outcomes.len()];
            ActivityEntry {
                at: datetime!(2026-11-20 12:00 UTC) - time::Duration::minutes(i * 7),
                job: format!("webhook:r{}", i / 10),
                direction: Direction::LmsToSalesforce,
                object: "LMS_Enrollment__c".into(),
                lms_id: format!("enr-{i:03}"),
                learner_id: Some(format!("u-{}", i % 4)),
                salesforce_id: (outcome != Outcome::Failed).then(|| format!("a01000000000{i:03}AAA")),
                outcome,
                reason: (outcome == Outcome::Failed).then(|| "FIELD_CUSTOM_VALIDATION_EXCEPTION".into()),
                message: (outcome == Outcome::Failed).then(|| "Status is invalid, \"Done\" expected".into()),
            }
        })
        .collect()
}

fn seed() -> MockState {
    let t0 = datetime!(2026-11-01 09:00 UTC);
    let mut s = MockState::default();
    let lms_secret = BTreeMap::from([("lms".to_string(), vec!["0123456789abcdef-acme".to_string()])]);
    s.tenants.insert(
        "acme".into(),
        StoredTenant {
            versions: vec![(acme_v1(), t0), (acme_v2(), t0 + time::Duration::days(1))],
            secrets: lms_secret.clone(),
            created_at: t0,
        },
    );
    let beta = json!({"name": "Beta Ltd", "paused": true, "salesforce": {"environment": "production", "client_id": "3MVG9beta"}});
    s.tenants
        .insert("beta".into(), StoredTenant { versions: vec![(beta, t0)], secrets: BTreeMap::new(), created_at: t0 });
    let racy = json!({"name": "Racy", "salesforce": {"environment": "production", "client_id": "3MVG9racy"}});
    s.tenants
        .insert("racy".into(), StoredTenant { versions: vec![(racy, t0)], secrets: BTreeMap::new(), created_at: t0 });
    s.activity.insert("acme".into(), entries());
    s.review.insert(
        "acme".into(),
        (1..=3)
            .map(|i| {
                json!({"learner_id": format!("u-{i}"), "email": format!("pat{i}@acme.test"), "matching_field": "Email",
                       "match_value": format!("pat{i}@acme.test"),
                       "candidates": [format!("003A0000000000{i}AAA"), format!("003B0000000000{i}AAA")],
                       "first_seen": "2026-11-20T09:00:00Z", "last_seen": "2026-11-20T12:00:00Z", "held": i})
            })
            .collect(),
    );
    let letter = |id: &str, tenant: Option<&str>, n: u32| {
        let (event, record, description) = match tenant {
            Some(_) => (
                json!(format!("evt-{n}")),
                json!(format!("enrollment E{n}")),
                format!("enrollment.completed of enrollment E{n} from source \"lms\""),
            ),
            None => (Value::Null, Value::Null, "the message is not a learnlink job: expected value".to_string()),
        };
        json!({"message_id": id, "receive_count": 5, "sent_at": format!("2026-11-20T1{n}:00:00Z"), "tenant": tenant,
               "event_id": event, "record": record, "description": description})
    };
    let done = mock_backfill("acme", DONE_ID, BackfillStatus::Completed, datetime!(2026-11-20 09:00 UTC));
    let running = mock_backfill("acme", RUNNING_ID, BackfillStatus::Running, datetime!(2026-11-23 09:50 UTC));
    s.backfills.insert(
        "acme".into(),
        vec![
            MockBackfill {
                backfill: done,
                progress: progress(100.0, 20, 20, 199_990, 10, 1_000, None),
                script: VecDeque::new(),
            },
            MockBackfill {
                backfill: running,
                progress: progress(45.0, 9, 20, 90_000, 12, 45, Some(130)),
                script: VecDeque::new(),
            },
        ],
    );
    let beta = mock_backfill("beta", BETA_ID, BackfillStatus::Running, datetime!(2026-11-22 08:00 UTC));
    s.backfills.insert(
        "beta".into(),
        vec![MockBackfill {
            backfill: beta,
            progress: progress(10.0, 2, 20, 20_000, 0, 10, Some(5_400)),
            script: VecDeque::new(),
        }],
    );
    s.dlq = vec![
        letter("m1", Some("acme"), 1),
        letter("m2", Some("beta"), 2),
        letter("m3", Some("acme"), 3),
        letter("m4", None, 4),
        letter("m-stuck", Some("acme"), 5),
    ];
    s
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn err(status: u16, code: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap();
    (s, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn invalid(code: &str, violations: Vec<Violation>) -> Response {
    let message = format!("the document has {} violation(s); nothing was stored", violations.len());
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"error": {"code": code, "message": message, "violations": violations}})),
    )
        .into_response()
}

fn ok(status: u16, v: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
}

fn counts(doc: &Value, secrets: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    doc.pointer("/webhooks/sources")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .map(|n| (n.to_string(), secrets.get(n).map_or(0, Vec::len)))
                .collect()
        })
        .unwrap_or_default()
}

fn document(id: &str, t: &StoredTenant, version: u64) -> Value {
    let (doc, at) = &t.versions[(version - 1) as usize];
    json!({"tenant": id, "version": version, "changed_at": ts(*at), "config": doc, "webhook_secrets": counts(doc, &t.secrets)})
}

/// Validate as the admin API does: the schema, the rules, and a secret for every signed source.
fn check(body: &Value, existing: &BTreeMap<String, Vec<String>>) -> Result<(Value, Secrets), Vec<Violation>> {
    let mut violations = validate(body).err().unwrap_or_default();
    let (doc, secrets) = strip_secrets(body);
    if let Some(list) = doc.pointer("/webhooks/sources").and_then(Value::as_array) {
        for (i, s) in list.iter().enumerate() {
            let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
            if secrets.get(name).is_none_or(Vec::is_empty) && existing.get(name).is_none_or(Vec::is_empty) {
                violations.push(Violation {
                    path: format!("/webhooks/sources/{i}/secrets"),
                    message: format!("source {name:?} is signed and has no secret yet: give 1 or 2"),
                });
            }
        }
    }
    if violations.is_empty() { Ok((doc, secrets)) } else { Err(violations) }
}

async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let line = format!(
        "{} {}{}",
        req.method(),
        req.uri().path(),
        req.headers()
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" [if-match: {v}]"))
            .unwrap_or_default()
    );
    let line = match req.uri().query() {
        Some(q) => line.replacen(req.uri().path(), &format!("{}?{q}", req.uri().path()), 1),
        None => line,
    };
    state.lock().unwrap().log.push(line);
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if given != format!("Bearer {TOKEN}") {
        // A careless server that echoes what it was given: the CLI must still never print a token.
        return err(401, "unauthorized", &format!("a valid admin credential is required (got {given:?})"));
    }
    if req.uri().path().starts_with("/admin/tenants/down") {
        return err(503, "unavailable", "a store learnlink depends on failed; retry later");
    }
    next.run(req).await
}

async fn list_tenants(State(state): State<Shared>) -> Response {
    let s = state.lock().unwrap();
    let list: Vec<Value> = s.tenants.iter().map(|(id, t)| summary(id, t)).collect();
    ok(200, json!({"tenants": list}))
}

fn summary(id: &str, t: &StoredTenant) -> Value {
    let (doc, at) = t.versions.last().unwrap();
    json!({
        "id": id,
        "name": doc.get("name").and_then(Value::as_str).unwrap_or_default(),
        "version": t.versions.len(),
        "paused": doc.get("paused").and_then(Value::as_bool).unwrap_or(false),
        "created_at": ts(t.created_at),
        "updated_at": ts(*at),
    })
}

fn unknown(id: &str) -> Response {
    err(404, "unknown_tenant", &format!("no tenant named {id:?}"))
}

fn body_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| err(400, "malformed_body", &format!("the body is not JSON: {e}")))
}

async fn create_tenant(State(state): State<Shared>, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    let config = body.get("config").cloned().unwrap_or(Value::Null);
    let mut violations = Vec::new();
    let id_ok = id.len() >= 2
        && id.len() <= 63
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-');
    if !id_ok {
        violations.push(Violation { path: "/id".into(), message: format!("{id:?} is not a tenant id") });
    }
    let checked = check(&config, &BTreeMap::new());
    if let Err(vs) = &checked {
        violations
            .extend(vs.iter().map(|v| Violation { path: format!("/config{}", v.path), message: v.message.clone() }));
    }
    let Ok((doc, secrets)) = checked.map_err(|_| ()).and_then(|c| if violations.is_empty() { Ok(c) } else { Err(()) })
    else {
        return invalid("invalid_tenant", violations);
    };
    let mut s = state.lock().unwrap();
    if s.tenants.contains_key(&id) {
        return err(409, "tenant_exists", &format!("a tenant named {id:?} exists already"));
    }
    let now = OffsetDateTime::now_utc();
    let t = StoredTenant { versions: vec![(doc, now)], secrets, created_at: now };
    let d = document(&id, &t, 1);
    s.tenants.insert(id, t);
    ok(201, d)
}

async fn get_tenant(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let s = state.lock().unwrap();
    match s.tenants.get(&id) {
        Some(t) => ok(200, summary(&id, t)),
        None => unknown(&id),
    }
}

fn int(q: &HashMap<String, String>, name: &str, max: u64) -> Result<Option<u64>, Response> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(err(400, "invalid_parameter", &format!("{name} must be a whole number from 1 to {max}"))),
        },
    }
}

async fn get_config(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = state.lock().unwrap();
    let Some(t) = s.tenants.get(&id) else { return unknown(&id) };
    let version = match int(&q, "version", u64::MAX) {
        Ok(v) => v.unwrap_or(t.versions.len() as u64),
        Err(r) => return r,
    };
    if version > t.versions.len() as u64 {
        return err(404, "unknown_version", &format!("tenant {id:?} has no configuration version {version}"));
    }
    ok(200, document(&id, t, version))
}

async fn put_config(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let Some(t) = s.tenants.get_mut(&id) else { return unknown(&id) };
    let current = t.versions.len() as u64;
    let expected =
        match headers.get(header::IF_MATCH).map(|v| v.to_str().unwrap_or("").trim_matches('"').parse::<u64>()) {
            None => current,
            Some(Ok(v)) => v,
            Some(Err(_)) => return err(400, "invalid_parameter", "If-Match must be a configuration version number"),
        };
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (doc, secrets) = match check(&body, &t.secrets) {
        Ok(c) => c,
        Err(vs) => return invalid("invalid_config", vs),
    };
    if id == "racy" || expected != current {
        let now = if id == "racy" { current + 1 } else { current };
        return err(
            409,
            "version_conflict",
            &format!(
                "the configuration of {id:?} changed: you edited version {expected}, the current one is version {now}"
            ),
        );
    }
    for (k, v) in secrets {
        t.secrets.insert(k, v);
    }
    t.versions.push((doc, OffsetDateTime::now_utc()));
    let v = t.versions.len() as u64;
    ok(200, document(&id, t, v))
}

async fn validate_config(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let s = state.lock().unwrap();
    let Some(t) = s.tenants.get(&id) else { return unknown(&id) };
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match check(&body, &t.secrets) {
        Ok(_) => ok(200, json!({"valid": true})),
        Err(vs) => invalid("invalid_config", vs),
    }
}

async fn versions(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let s = state.lock().unwrap();
    let Some(t) = s.tenants.get(&id) else { return unknown(&id) };
    let list: Vec<Value> = t
        .versions
        .iter()
        .enumerate()
        .rev()
        .map(|(i, (_, at))| json!({"version": i + 1, "changed_at": ts(*at)}))
        .collect();
    ok(200, json!({"tenant": id, "versions": list}))
}

async fn config_diff(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = state.lock().unwrap();
    let Some(t) = s.tenants.get(&id) else { return unknown(&id) };
    let latest = t.versions.len() as u64;
    let to = match int(&q, "to", u64::MAX) {
        Ok(v) => v.unwrap_or(latest),
        Err(r) => return r,
    };
    let from = match int(&q, "from", u64::MAX) {
        Ok(v) => v.unwrap_or(to.saturating_sub(1)),
        Err(r) => return r,
    };
    let load = |v: u64| -> Option<Value> {
        if v == 0 { Some(json!({})) } else { t.versions.get((v - 1) as usize).map(|(d, _)| d.clone()) }
    };
    let (Some(a), Some(b)) = (load(from), load(to)) else {
        return err(404, "unknown_version", &format!("tenant {id:?} has no such configuration version"));
    };
    ok(200, json!({"tenant": id, "from": from, "to": to, "changes": diff(&a, &b)}))
}

async fn status(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let s = state.lock().unwrap();
    let Some(t) = s.tenants.get(&id) else { return unknown(&id) };
    let doc = &t.versions.last().unwrap().0;
    let h = if doc.get("paused").and_then(Value::as_bool).unwrap_or(false) {
        json!({"tenant": id, "status": "PAUSED", "sentence": "An admin paused this tenant: work is kept, nothing is written.", "remedy": "Set paused to false to resume.", "dlq_depth": 0})
    } else if id == "acme" {
        json!({"tenant": id, "status": "CONNECTED", "sentence": "Salesforce answers and the sync is caught up.", "dlq_depth": 0})
    } else {
        json!({"tenant": id, "status": "DISCONNECTED", "cause": "no_token", "sentence": "learnlink has no Salesforce token for this tenant.", "remedy": "Run `learnlink connect` for this tenant.", "dlq_depth": 2})
    };
    ok(200, h)
}

async fn activity(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let time = |name: &str| -> Result<Option<OffsetDateTime>, Response> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => OffsetDateTime::parse(v, &Rfc3339)
                .map(Some)
                .map_err(|_| err(400, "invalid_parameter", &format!("{name} must be an RFC 3339 date-time"))),
        }
    };
    let outcome = match q.get("outcome") {
        None => None,
        Some(o) => match Outcome::parse(o) {
            Some(o) => Some(o),
            None => return err(400, "invalid_parameter", "outcome must be one of created, updated, …"),
        },
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let filter = ActivityFilter { outcome, learner: q.get("learner").cloned(), since, until };
    let limit = match int(&q, "limit", 1000) {
        Ok(l) => l.unwrap_or(10) as usize,
        Err(r) => return r,
    };
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => match c.strip_prefix("off-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return err(400, "invalid_cursor", "the cursor is not one this API gave"),
        },
    };
    let all: Vec<ActivityEntry> =
        s.activity.get(&id).cloned().unwrap_or_default().into_iter().filter(|e| filter.matches(e)).collect();
    let page: Vec<ActivityEntry> = all.iter().skip(start).take(limit).cloned().collect();
    let next = (start + limit < all.len()).then(|| format!("off-{}", start + limit));
    if q.get("format").map(String::as_str) == Some("csv") {
        return ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(&page)).into_response();
    }
    ok(200, json!({"tenant": id, "entries": page, "next_cursor": next}))
}

async fn runs(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    ok(
        200,
        json!({"tenant": id, "runs": [
            {"run_id": "r2", "job": "webhook", "started_at": "2026-11-20T12:00:00Z", "finished_at": "2026-11-20T12:01:05Z", "created": 12, "updated": 3, "skipped": 1, "failed": 2},
            {"run_id": "r1", "job": "webhook", "started_at": "2026-11-20T11:00:00Z", "finished_at": "2026-11-20T11:00:09Z", "created": 4, "updated": 0, "skipped": 0, "failed": 0}
        ]}),
    )
}

async fn review(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let limit = match int(&q, "limit", 1000) {
        Ok(l) => l.unwrap_or(2) as usize,
        Err(r) => return r,
    };
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => match c.strip_prefix("rv-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return err(400, "invalid_cursor", "the cursor is not one this API issued"),
        },
    };
    let all = s.review.get(&id).cloned().unwrap_or_default();
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let next = (start + limit < all.len()).then(|| format!("rv-{}", start + limit));
    ok(200, json!({"tenant": id, "items": page, "next_cursor": next}))
}

async fn resolve(State(state): State<Shared>, Path((id, learner)): Path<(String, String)>, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(contact) = body.get("contact_id").and_then(Value::as_str).map(str::to_string) else {
        return err(400, "malformed_body", "the body must be {\"contact_id\": \"<Salesforce Contact id>\"}");
    };
    let queue = s.review.entry(id.clone()).or_default();
    let Some(pos) = queue.iter().position(|i| i["learner_id"] == learner.as_str()) else {
        return err(404, "unknown_learner", &format!("learner {learner:?} is not in the review queue of {id}"));
    };
    let candidates: Vec<String> =
        queue[pos]["candidates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    if !candidates.contains(&contact) {
        return err(
            422,
            "not_a_candidate",
            &format!(
                "Contact {contact} is not a candidate for learner {learner:?}; the candidates are {}",
                candidates.join(", ")
            ),
        );
    }
    let item = queue.remove(pos);
    s.resolved.push((id.clone(), learner.clone(), contact.clone()));
    ok(200, json!({"tenant": id, "learner_id": learner, "contact_id": contact, "released": item["held"]}))
}

async fn tenant_dlq(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let messages: Vec<Value> = s.dlq.iter().filter(|m| m["tenant"] == id.as_str()).cloned().collect();
    ok(200, json!({"tenant": id, "messages": messages}))
}

async fn all_dlq(State(state): State<Shared>) -> Response {
    ok(200, json!({"messages": state.lock().unwrap().dlq}))
}

/// Replays every message asked for (or every one of the tenant's) except
/// `m-stuck`, which the sync queue "refuses".
async fn replay(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        match body_json(&body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    s.replays.push(body.clone());
    let mine: Vec<String> = s
        .dlq
        .iter()
        .filter(|m| m["tenant"] == id.as_str())
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    let asked: Vec<String> = match body.get("message_ids").and_then(Value::as_array) {
        Some(ids) => ids.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        None => mine.clone(),
    };
    let unknown_ids: Vec<&str> = asked.iter().filter(|a| !mine.contains(a)).map(String::as_str).collect();
    if !unknown_ids.is_empty() {
        return err(
            404,
            "unknown_message",
            &format!("the dead-letter queue holds no message {} of tenant {id}", unknown_ids.join(", ")),
        );
    }
    let done: Vec<String> = asked.into_iter().filter(|a| a != "m-stuck").collect();
    s.dlq.retain(|m| !done.iter().any(|d| m["message_id"] == d.as_str()));
    ok(200, json!({"tenant": id, "replayed": done.len(), "message_ids": done}))
}

fn bad_backfill_id(id: &str) -> Option<Response> {
    (!valid_id(id)).then(|| err(400, "invalid_backfill_id", &format!("{id:?} is not a backfill id")))
}

fn not_found_backfill(id: &str) -> Response {
    err(404, "backfill_not_found", &format!("no backfill {id} for this tenant"))
}

async fn list_backfills(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let limit = match int(&q, "limit", 100) {
        Ok(l) => l.unwrap_or(20) as usize,
        Err(r) => return r,
    };
    let list: Vec<Value> =
        s.backfills.get(&id).map(|l| l.iter().rev().take(limit).map(MockBackfill::view).collect()).unwrap_or_default();
    ok(200, json!({"backfills": list}))
}

fn apply(b: &mut MockBackfill, status: BackfillStatus, p: Progress, reason: Option<String>) {
    b.backfill.status = status;
    b.progress = p;
    if reason.is_some() {
        b.backfill.reason = reason;
    }
    if status.is_final() {
        b.backfill.finished_at = Some(b.backfill.created_at + time::Duration::minutes(42));
    }
}

async fn get_backfill(
    State(state): State<Shared>,
    Path((id, bf)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    if let Some(r) = bad_backfill_id(&bf) {
        return r;
    }
    let with_shards = match q.get("shards").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return err(400, "invalid_parameter", "shards must be true or false"),
    };
    let Some(b) = s.backfills.get_mut(&id).and_then(|l| l.iter_mut().find(|b| b.backfill.id == bf)) else {
        return not_found_backfill(&bf);
    };
    if let Some((status, p, reason)) = b.script.pop_front() {
        apply(b, status, p, reason);
    }
    let mut v = b.view();
    if with_shards {
        let w = b.backfill.window;
        let mut done = Shard::new(0, w, 10_000);
        done.status = ShardStatus::Done;
        done.counts.created = 9_990;
        done.counts.failed = 10;
        v["shards"] = json!([done, Shard::new(1, w, 10_000)]);
    }
    ok(200, v)
}

async fn cancel_backfill(State(state): State<Shared>, Path((id, bf)): Path<(String, String)>) -> Response {
    let mut s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    if let Some(r) = bad_backfill_id(&bf) {
        return r;
    }
    let Some(b) = s.backfills.get_mut(&id).and_then(|l| l.iter_mut().find(|b| b.backfill.id == bf)) else {
        return not_found_backfill(&bf);
    };
    if b.backfill.status.is_final() {
        return err(
            409,
            "backfill_finished",
            &format!("backfill {bf} is already {}; nothing was changed", b.backfill.status.as_str()),
        );
    }
    let mut p = b.progress.clone();
    p.eta_seconds = None;
    apply(b, BackfillStatus::Cancelled, p, Some("cancelled by an admin".into()));
    ok(200, b.view())
}

/// Starts a backfill of 3 shards (30,000 records) unless one of the tenant's
/// has not ended (409 naming it); a new one reads running 1/3, then completed.
async fn start_backfill(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let time =
        |name: &str| body.get(name).and_then(Value::as_str).and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok());
    let Some(since) = time("since") else {
        return err(400, "invalid_field", "since is required: an RFC 3339 date-time");
    };
    let until = time("until").unwrap_or(datetime!(2026-11-23 10:00 UTC));
    let Ok(window) = Window::new(since, until) else {
        return err(400, "invalid_window", "the window is empty");
    };
    s.starts.push(body.clone());
    let list = s.backfills.entry(id.clone()).or_default();
    if let Some(b) = list.iter().find(|b| !b.backfill.status.is_final()) {
        return err(
            409,
            "backfill_running",
            &format!("backfill {} of {id} has not ended: cancel it or wait for it", b.backfill.id),
        );
    }
    let new_id = format!("bf-20261123T100000-new{}", list.len() + 1);
    let mut b = mock_backfill(&id, &new_id, BackfillStatus::Running, datetime!(2026-11-23 10:00 UTC));
    b.window = window;
    b.expected = 30_000;
    b.shards = 3;
    b.options.only_changed = body.get("only_changed").and_then(Value::as_bool).unwrap_or(false);
    let mut p0 = progress(0.0, 0, 3, 0, 0, 0, None);
    p0.elapsed_seconds = 0;
    let m = MockBackfill {
        backfill: b,
        progress: p0,
        script: VecDeque::from([
            (BackfillStatus::Running, progress(33.3, 1, 3, 10_000, 0, 5, Some(20)), None),
            (BackfillStatus::Completed, progress(100.0, 3, 3, 29_998, 2, 15, None), None),
        ]),
    };
    let v = m.view();
    list.push(m);
    ok(202, v)
}

/// The export's columns.
pub const EXPORT_HEADER: &str =
    "enrollment_id,learner_id,course_id,course_title,status,progress_pct,score,enrolled_at,completed_at,updated_at";

/// 12 rows over three answers (5, 5, 2): acme's; beta has no LMS (409);
/// racy's second answer is a 503.
async fn export(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = state.lock().unwrap();
    if !s.tenants.contains_key(&id) {
        return unknown(&id);
    }
    let time = |name: &str| -> Result<Option<OffsetDateTime>, Response> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => OffsetDateTime::parse(v, &Rfc3339)
                .map(Some)
                .map_err(|_| err(400, "invalid_parameter", &format!("{name} must be an RFC 3339 date-time"))),
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(Some(a)), Ok(b)) => (a, b.unwrap_or(datetime!(2026-11-23 10:00 UTC))),
        (Ok(None), _) => return err(400, "invalid_parameter", "since is required: an RFC 3339 date-time"),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if since >= until {
        return err(400, "invalid_window", "the window is empty");
    }
    if id == "beta" {
        return err(409, "not_configured", "tenant beta has no lms.base_url");
    }
    let page = match q.get("cursor").map(String::as_str) {
        None => 0,
        Some("p1") if id == "racy" => return err(503, "lms_unavailable", "the LMS did not answer; retry in a moment"),
        Some("p1") => 1,
        Some("p2") => 2,
        Some(_) => return err(400, "invalid_cursor", "the cursor is not one this export gave"),
    };
    let mut out = Vec::new();
    if page == 0 {
        out.extend_from_slice(EXPORT_HEADER.as_bytes());
        out.push(b'\n');
    }
    let rows = [5, 5, 2][page];
    for i in page * 5..page * 5 + rows {
        let title = if i == 3 { "Fire \"safety\",\nlevel 2".to_string() } else { format!("Course {i}") };
        let id = format!("E{i:03}");
        let fields = [
            id.as_str(),
            "L1",
            "C1",
            title.as_str(),
            "completed",
            "100",
            "",
            "2026-01-02T08:00:00.000Z",
            "2026-01-03T08:00:00.000Z",
            "2026-01-03T08:00:00.000Z",
        ];
        learnlink_core::csv::write_row(&mut out, fields);
    }
    let next = match page {
        0 => Some("p1"),
        1 => Some("p2"),
        _ => None,
    };
    let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response();
    if let Some(c) = next {
        r.headers_mut().insert("learnlink-next-cursor", header::HeaderValue::from_static(c));
    }
    r
}

/// Start the mock on 127.0.0.1:0 (it lives as long as the test process).
pub fn start() -> Mock {
    let state: Shared = Arc::new(Mutex::new(seed()));
    let app = Router::new()
        .route("/admin/tenants", get(list_tenants).post(create_tenant))
        .route("/admin/tenants/{id}", get(get_tenant))
        .route("/admin/tenants/{id}/config", get(get_config).put(put_config))
        .route("/admin/tenants/{id}/config/validate", post(validate_config))
        .route("/admin/tenants/{id}/config/versions", get(versions))
        .route("/admin/tenants/{id}/config/diff", get(config_diff))
        .route("/admin/tenants/{id}/status", get(status))
        .route("/admin/tenants/{id}/activity", get(activity))
        .route("/admin/tenants/{id}/runs", get(runs))
        .route("/admin/tenants/{id}/review", get(review))
        .route("/admin/tenants/{id}/review/{learner}/resolve", post(resolve))
        .route("/admin/tenants/{id}/dlq", get(tenant_dlq))
        .route("/admin/tenants/{id}/dlq/replay", post(replay))
        .route("/admin/dlq", get(all_dlq))
        .route("/admin/tenants/{id}/backfills", get(list_backfills).post(start_backfill))
        .route("/admin/tenants/{id}/backfills/{bf}", get(get_backfill))
        .route("/admin/tenants/{id}/backfills/{bf}/cancel", post(cancel_backfill))
        .route("/admin/tenants/{id}/exports/enrollments", get(export))
        .fallback(|| async { err(404, "not_found", "no admin route") })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    Mock { url, state }
}

/// An address where nothing listens.
pub fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
    pub fn err_json(&self) -> Value {
        serde_json::from_str(&self.stderr).unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", self.stderr))
    }
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(self.code, expected, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

/// A run of `learnlink`: a clean environment (plus `env`), in `dir`.
pub fn run_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_learnlink"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [TOKEN, WEBHOOK_SECRET] {
        assert!(!run.stdout.contains(secret), "a secret on stdout of {args:?}:\n{}", run.stdout);
        assert!(!run.stderr.contains(secret), "a secret on stderr of {args:?}:\n{}", run.stderr);
    }
    run
}

/// A scratch directory with nothing above it that looks like a stack.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A run against the mock, with the token in the environment.
pub fn run(mock: &Mock, args: &[&str]) -> Run {
    let dir = scratch();
    run_in(dir.path(), &[("LEARNLINK_API_URL", &mock.url), ("LEARNLINK_ADMIN_TOKEN", TOKEN)], args)
}

/// A file in a scratch directory.
pub fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}
