//! Webhook emission: turns enrollments into deliveries of any webhook dialect
//! of SPEC §4.1 and POSTs them to a target URL, optionally with duplicates
//! and in a shuffled order.
//!
//! Choice and order: `count` (the first in the current `(updated_at, id)`
//! order) or `enrollment_ids`; each enrollment's current version, or with
//! `"history": true` every version it went through
//! (`POST /__emulator/enrollments/advance`), each an event of its own (id
//! `evt_<enrollment>_<updated ms>`), first versions first. `duplicate_pct`
//! re-sends that share of the deliveries after the originals; `reorder`
//! shuffles every send, `reorder_pct` instead moves that share of them each
//! to a random place; `seed` varies both patterns between calls. The report
//! counts `duplicates` and `reordered` sends.
//!
//! | `dialect`   | body                                                | authentication (from `secret`)                      |
//! |-------------|-----------------------------------------------------|-----------------------------------------------------|
//! | `canonical` | `{"events":[…]}`, `events_per_delivery` ≤ 100       | `Learnlink-Signature: t=…,v1=<hex HMAC of "t.body">` |
//! | `thinkific` | `{id,resource,action,tenant_id,created_at,payload}` | `X-Thinkific-Hmac-Sha256`: hex HMAC of the body      |
//! | `northpass` | JSON:API `{data:{…},included:[people,courses]}`     | `X-Northpass-Hmac-SHA256`: base64 HMAC of the body   |
//! | `docebo`    | `{message_id,event,…,payload|payloads}`, ≤ 25       | `X-Docebo-Signature`: hex HMAC of the body           |
//! | `skilljar`  | `{event_type,timestamp,user,course,…}`              | unsigned: the secret is appended to `target_url` as its last path segment (percent-encoded) |
//!
//! The vendor dialects carry one event per delivery, except Docebo, which
//! groups up to 25 events of one type (`events_per_delivery` sets the group
//! size; 1 sends the single-`payload` form). Without a `secret` deliveries
//! are sent unsigned (and, for Skilljar, without a token). `event_type`
//! overrides each event's type in the dialect's own vocabulary
//! (`enrollment.trial` for Thinkific, `resource.action`).
//!
//! What each vendor payload carries follows the vendor; what it cannot carry
//! is left out (Thinkific has no score; Docebo sends no progress percentage
//! and Docebo and Skilljar have no enrollment id — learnlink keys those by
//! learner and course; Skilljar has no expiry event: an expired enrollment
//! is emitted as a lesson completion). Learners and courses keep the
//! emulator's ids (`L000001`, `C001`) in every dialect, so the learner a
//! vendor event names is the one the LMS API returns.

use std::collections::BTreeMap;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::data::{Dataset, Enrollment, EnrollmentRow, Learner, parse_id};
use crate::prng::SplitMix64;
use crate::state::LmsState;

/// Header carrying the canonical dialect's signature.
pub const SIGNATURE_HEADER: &str = "Learnlink-Signature";
pub const THINKIFIC_HEADER: &str = "X-Thinkific-Hmac-Sha256";
pub const NORTHPASS_HEADER: &str = "X-Northpass-Hmac-SHA256";
pub const DOCEBO_HEADER: &str = "X-Docebo-Signature";
/// Most events in one canonical delivery, and in one Docebo group.
pub const MAX_CANONICAL_EVENTS: usize = 100;
pub const MAX_DOCEBO_EVENTS: usize = 25;

/// The webhook dialects of SPEC §4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Canonical,
    Thinkific,
    Northpass,
    Docebo,
    Skilljar,
}

impl Dialect {
    pub const ALL: [Dialect; 5] =
        [Dialect::Canonical, Dialect::Thinkific, Dialect::Northpass, Dialect::Docebo, Dialect::Skilljar];

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Canonical => "canonical",
            Dialect::Thinkific => "thinkific",
            Dialect::Northpass => "northpass",
            Dialect::Docebo => "docebo",
            Dialect::Skilljar => "skilljar",
        }
    }

    pub fn parse(s: &str) -> Option<Dialect> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Most events one delivery of this dialect carries.
    pub fn max_events_per_delivery(self) -> usize {
        match self {
            Dialect::Canonical => MAX_CANONICAL_EVENTS,
            Dialect::Docebo => MAX_DOCEBO_EVENTS,
            Dialect::Thinkific | Dialect::Northpass | Dialect::Skilljar => 1,
        }
    }
}

/// Body of `POST /__emulator/webhooks/emit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitRequest {
    /// Where to POST. For `skilljar` the secret is appended as a last path
    /// segment: pass the source's URL without the token.
    pub target_url: String,
    #[serde(default = "default_dialect")]
    pub dialect: String,
    /// HMAC secret (Skilljar: URL token); without it deliveries are sent unsigned.
    #[serde(default)]
    pub secret: Option<String>,
    /// The first `count` enrollments in (updated_at, id) order ...
    #[serde(default)]
    pub count: Option<usize>,
    /// ... or these enrollments, in this order.
    #[serde(default)]
    pub enrollment_ids: Option<Vec<String>>,
    #[serde(default = "default_events_per_delivery")]
    pub events_per_delivery: usize,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Share (percent) of deliveries sent a second time.
    #[serde(default)]
    pub duplicate_pct: u32,
    /// Shuffle deliveries (deterministically).
    #[serde(default)]
    pub reorder: bool,
    /// Without `reorder`: this share (percent) of the deliveries is taken
    /// out of the send order and put back each at a random place.
    #[serde(default)]
    pub reorder_pct: u32,
    /// Every stored version of each chosen enrollment (see
    /// [`crate::enrollments`]) as an event of its own, oldest versions
    /// first: all first versions, then all second versions, ...
    #[serde(default)]
    pub history: bool,
    /// Mixed into the seed of duplicates and reordering (default 0), so
    /// several emit calls need not repeat one pattern.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Overrides every event's type (in the dialect's vocabulary).
    #[serde(default)]
    pub event_type: Option<String>,
    /// Overrides the signature timestamp (Unix seconds), e.g. to send stale
    /// ones; the canonical dialect only (the vendors sign no timestamp).
    #[serde(default)]
    pub timestamp: Option<i64>,
}

fn default_dialect() -> String {
    "canonical".to_owned()
}

fn default_events_per_delivery() -> usize {
    1
}

fn default_concurrency() -> usize {
    4
}

/// Summary answered by the emit endpoint.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmitReport {
    /// HTTP requests attempted (duplicates included).
    pub deliveries: usize,
    /// Events carried by those requests (duplicates included).
    pub events: usize,
    /// Deliveries that were re-sends.
    pub duplicates: usize,
    /// Events carried by the re-sends (`events` − this: each event once).
    #[serde(default)]
    pub duplicate_events: usize,
    /// Deliveries sent out of order (`reorder`: all of them).
    #[serde(default)]
    pub reordered: usize,
    /// Response status → count.
    pub statuses: BTreeMap<String, usize>,
    /// Requests that got no HTTP response.
    pub errors: usize,
}

/// One canonical event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub data: Enrollment,
}

#[derive(Serialize)]
struct Body<'a> {
    events: &'a [Event],
}

/// The canonical event for an enrollment.
pub fn canonical_event(e: Enrollment, updated_ms: i64, enrolled_ms: i64, type_override: Option<&str>) -> Event {
    let event_type = match type_override {
        Some(t) => t.to_owned(),
        None => Change::kind_of(&e, updated_ms, enrolled_ms).canonical().to_owned(),
    };
    Event { id: format!("evt_{}_{}", e.id, updated_ms), event_type, occurred_at: e.updated_at.clone(), data: e }
}

fn hmac(secret: &str) -> Option<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let Some(mut mac) = hmac(secret) else { return format!("t={t},v1=") };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Hex HMAC-SHA256 of the body (Thinkific, Docebo).
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let Some(mut mac) = hmac(secret) else { return String::new() };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Base64 HMAC-SHA256 of the body (Northpass).
pub fn sign_base64(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    let Some(mut mac) = hmac(secret) else { return String::new() };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The authentication headers of one delivery (none for Skilljar).
pub fn auth_headers(dialect: Dialect, secret: &str, t: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    match dialect {
        Dialect::Canonical => vec![(SIGNATURE_HEADER, sign(secret, t, body))],
        Dialect::Thinkific => vec![(THINKIFIC_HEADER, sign_hex(secret, body))],
        Dialect::Northpass => vec![(NORTHPASS_HEADER, sign_base64(secret, body))],
        Dialect::Docebo => vec![(DOCEBO_HEADER, sign_hex(secret, body))],
        Dialect::Skilljar => vec![("User-Agent", "skilljar".to_owned())],
    }
}

/// Where a delivery goes: the target, plus the percent-encoded token as a
/// last path segment for Skilljar.
pub fn delivery_url(dialect: Dialect, target_url: &str, secret: Option<&str>) -> Result<String, String> {
    let mut url = reqwest::Url::parse(target_url).map_err(|_| "target_url must be an http(s) URL".to_owned())?;
    if let (Dialect::Skilljar, Some(token)) = (dialect, secret) {
        url.path_segments_mut().map_err(|_| "target_url cannot take a path".to_owned())?.pop_if_empty().push(token);
    }
    Ok(url.to_string())
}

/// Checks the request and selects the enrollments (indexes).
pub fn select(data: &Dataset, req: &EmitRequest) -> Result<Vec<u32>, String> {
    let Some(dialect) = Dialect::parse(&req.dialect) else {
        let known: Vec<&str> = Dialect::ALL.iter().map(|d| d.as_str()).collect();
        return Err(format!("unknown dialect '{}'; supported: {}", req.dialect, known.join(", ")));
    };
    match reqwest::Url::parse(&req.target_url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => return Err("target_url must be an http(s) URL".to_owned()),
    }
    let max = dialect.max_events_per_delivery();
    if !(1..=max).contains(&req.events_per_delivery) {
        return Err(match dialect {
            Dialect::Canonical | Dialect::Docebo => {
                format!("events_per_delivery must be between 1 and {max} for {}", dialect.as_str())
            }
            _ => format!("{} sends one event per delivery: events_per_delivery must be 1", dialect.as_str()),
        });
    }
    if !(1..=256).contains(&req.concurrency) {
        return Err("concurrency must be between 1 and 256".to_owned());
    }
    if req.duplicate_pct > 100 {
        return Err("duplicate_pct must be between 0 and 100".to_owned());
    }
    if req.reorder_pct > 100 {
        return Err("reorder_pct must be between 0 and 100".to_owned());
    }
    match (&req.count, &req.enrollment_ids) {
        (Some(_), Some(_)) => Err("give either count or enrollment_ids, not both".to_owned()),
        (None, None) => Err("give count or enrollment_ids".to_owned()),
        (Some(n), None) => Ok(data.first_enrollments(*n)),
        (None, Some(ids)) => ids
            .iter()
            .map(|id| {
                parse_id(id, 'E')
                    .filter(|i| (*i as usize) < data.enrollments.len())
                    .ok_or_else(|| format!("unknown enrollment id {id}"))
            })
            .collect(),
    }
}

/// The versions to send: each chosen enrollment's current one, or with
/// `history` every stored version, round by round (all first versions in
/// selection order, then all second versions, ...).
pub fn versions(data: &Dataset, history: bool, selected: &[u32]) -> Vec<(u32, EnrollmentRow)> {
    if !history {
        return selected.iter().filter_map(|i| data.current_enrollment(*i).map(|row| (*i, row))).collect();
    }
    let all: Vec<Vec<EnrollmentRow>> = selected.iter().map(|i| data.enrollment_versions(*i)).collect();
    let rounds = all.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(all.iter().map(Vec::len).sum());
    for r in 0..rounds {
        for (i, v) in selected.iter().zip(&all) {
            if let Some(row) = v.get(r) {
                out.push((*i, *row));
            }
        }
    }
    out
}

/// One HTTP delivery: its body and the number of events it carries.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub events: usize,
}

/// What to send, in which order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub deliveries: Vec<Delivery>,
    /// Indexes into `deliveries`, duplicates included.
    pub order: Vec<usize>,
    pub duplicates: usize,
    /// Sends taken out of their place (`reorder`: all).
    pub reordered: usize,
}

/// What happened to an enrollment, in learnlink's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Created,
    Updated,
    Completed,
}

impl ChangeKind {
    pub fn canonical(self) -> &'static str {
        match self {
            ChangeKind::Created => "enrollment.created",
            ChangeKind::Updated => "enrollment.updated",
            ChangeKind::Completed => "enrollment.completed",
        }
    }
}

/// One enrollment change to render in a dialect.
#[derive(Debug)]
pub struct Change {
    pub index: u32,
    pub enrollment: Enrollment,
    pub learner: Option<Learner>,
    pub updated_ms: i64,
    pub kind: ChangeKind,
}

impl Change {
    fn kind_of(e: &Enrollment, updated_ms: i64, enrolled_ms: i64) -> ChangeKind {
        if e.status == "completed" {
            ChangeKind::Completed
        } else if updated_ms == enrolled_ms {
            ChangeKind::Created
        } else {
            ChangeKind::Updated
        }
    }

    /// The change for enrollment `i` of the data set (its current version).
    pub fn of(data: &Dataset, i: u32) -> Option<Change> {
        let row = data.current_enrollment(i)?;
        Some(Change::of_version(data, i, &row))
    }

    /// The change for one version of enrollment `i`.
    pub fn of_version(data: &Dataset, i: u32, row: &EnrollmentRow) -> Change {
        let enrollment = data.render_enrollment(i, row);
        let kind = Change::kind_of(&enrollment, row.updated_at, row.enrolled_at);
        Change { index: i, learner: data.learner(row.learner), enrollment, updated_ms: row.updated_at, kind }
    }

    fn email(&self) -> String {
        self.learner.as_ref().map(|l| l.email.clone()).unwrap_or_default()
    }
    fn first_name(&self) -> String {
        self.learner.as_ref().map(|l| l.first_name.clone()).unwrap_or_default()
    }
    fn last_name(&self) -> String {
        self.learner.as_ref().map(|l| l.last_name.clone()).unwrap_or_default()
    }

    /// A deterministic 64-bit value per change, for vendor-style ids.
    fn hash(&self, salt: u64) -> u64 {
        let mut g = SplitMix64::new(salt ^ (u64::from(self.index) << 20) ^ self.updated_ms.unsigned_abs());
        g.next_u64()
    }
}

/// `2026-05-12T10:00:00.000Z` → `2026-05-12 10:00:00` (Docebo's format, UTC).
fn docebo_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
}

/// `2026-05-12T10:00:00.000Z` → `2026-05-12T10:00:00.000000+00:00` (Skilljar's).
fn skilljar_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(s) => format!("{s}000+00:00"),
        None => rfc3339.to_owned(),
    }
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// A Thinkific `enrollment.*` webhook body.
pub fn thinkific_body(c: &Change, type_override: Option<&str>) -> Value {
    let e = &c.enrollment;
    let (resource, action) = match type_override {
        Some(t) => t.split_once('.').map_or(("enrollment", t), |(r, a)| (r, a)),
        None => (
            "enrollment",
            match c.kind {
                ChangeKind::Created => "created",
                ChangeKind::Updated => "progress",
                ChangeKind::Completed => "completed",
            },
        ),
    };
    // Thinkific's event ids are 23 digits starting with the time; this is
    // the time to the millisecond plus the enrollment index.
    let digits: String = e.updated_at.chars().filter(char::is_ascii_digit).collect();
    json!({
        "id": format!("{digits}{:08}", c.index),
        "resource": resource,
        "action": action,
        "tenant_id": "1",
        "created_at": e.updated_at,
        "payload": {
            "activated_at": e.enrolled_at,
            "completed_at": opt(&e.completed_at),
            "course": {"id": e.course_id, "name": e.course_title},
            "course_id": e.course_id,
            "created_at": e.enrolled_at,
            "expired": e.status == "expired",
            "expiry_date": if e.status == "expired" { json!(e.updated_at) } else { Value::Null },
            "free_trial": false,
            "id": e.id,
            "percentage_completed": format!("{:.1}", f64::from(e.progress_pct)),
            "started_at": if e.progress_pct > 0 { json!(e.enrolled_at) } else { Value::Null },
            "updated_at": e.updated_at,
            "user": {"email": c.email(), "first_name": c.first_name(), "id": e.learner_id, "last_name": c.last_name()}
        }
    })
}

/// A Northpass JSON:API webhook body.
pub fn northpass_body(c: &Change, type_override: Option<&str>) -> Value {
    let e = &c.enrollment;
    let ty = type_override.unwrap_or(match c.kind {
        ChangeKind::Created => "course_enrollment_created_events",
        ChangeKind::Updated => "course_progress_updated_events",
        ChangeKind::Completed => "course_completed_events",
    });
    let (h1, h2) = (c.hash(0x4E07_7A55), c.hash(0x0DDB_A110));
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h1 >> 32,
        (h1 >> 16) & 0xFFFF,
        h1 & 0xFFF,
        (h2 >> 48) & 0xFFF,
        h2 & 0xFFFF_FFFF_FFFF
    );
    json!({
        "data": {
            "id": id,
            "type": ty,
            "links": {},
            "attributes": {
                "created_at": e.updated_at,
                "updated_at": e.updated_at,
                "status": e.status,
                "progress": e.progress_pct,
                "score": e.score,
                "enrolled_at": e.enrolled_at,
                "completed_at": opt(&e.completed_at)
            },
            "relationships": {
                "enrollment": {"data": {"id": e.id, "type": "enrollments"}},
                "learner": {"data": {"id": e.learner_id, "type": "people"}},
                "course": {"data": {"id": e.course_id, "type": "courses"}}
            }
        },
        "included": [
            {"id": e.learner_id, "type": "people", "attributes": {
                "email": c.email(), "first_name": c.first_name(), "last_name": c.last_name(),
                "full_name": format!("{} {}", c.first_name(), c.last_name()), "sso_uid": c.email()}},
            {"id": e.course_id, "type": "courses", "attributes": {"name": e.course_title}}
        ]
    })
}

/// The Docebo event name of a change.
pub fn docebo_event(c: &Change) -> &'static str {
    match c.kind {
        ChangeKind::Created => "course.enrollment.created",
        ChangeKind::Updated => "course.enrollment.updated",
        ChangeKind::Completed => "course.enrollment.completed",
    }
}

/// One Docebo `course.enrollment.*` payload.
pub fn docebo_payload(c: &Change) -> Value {
    let e = &c.enrollment;
    let status = match e.status {
        "completed" => "completed",
        _ if e.progress_pct > 0 => "in_progress",
        _ => "subscribed",
    };
    let username = c.email().split('@').next().unwrap_or_default().to_owned();
    let mut p = json!({
        "fired_at": docebo_time(&e.updated_at),
        "user_id": e.learner_id,
        "username": username,
        "email": c.email(),
        "first_name": c.first_name(),
        "last_name": c.last_name(),
        "course_id": e.course_id,
        "course_code": e.course_id,
        "course_name": e.course_title,
        "enrollment_date": docebo_time(&e.enrolled_at),
        "completion_date": e.completed_at.as_deref().map_or(Value::Null, |t| json!(docebo_time(t))),
        "status": status,
        "level": "student",
        "score": e.score
    });
    if e.status == "expired" {
        p["date_expire_validity"] = json!(docebo_time(&e.updated_at));
    }
    p
}

/// A Docebo message carrying `changes` (one type), single-payload form when
/// `grouped` is false.
pub fn docebo_body(changes: &[&Change], event: &str, grouped: bool) -> Value {
    let mut h: u64 = 0x00D0_CEB0;
    for c in changes {
        h = h.rotate_left(7) ^ c.hash(0x00D0_CEB0);
    }
    let mut m = json!({
        "message_id": format!("wh-{h:016x}"),
        "webhook_id": 1,
        "original_domain": "lms-emulator.docebosaas.com",
        "event": event,
        "fired_by_batch_action": changes.len() > 1,
    });
    let payloads: Vec<Value> = changes.iter().map(|c| docebo_payload(c)).collect();
    if grouped {
        m["payloads"] = Value::Array(payloads);
    } else if let Some(p) = payloads.into_iter().next() {
        m["payload"] = p;
    }
    m
}

/// A Skilljar webhook body.
pub fn skilljar_body(c: &Change, type_override: Option<&str>) -> Value {
    let e = &c.enrollment;
    let ty = type_override.unwrap_or(match e.status {
        "completed" => "COURSE_COMPLETION",
        "enrolled" => "COURSE_ENROLLMENT",
        _ => "LESSON_COMPLETION",
    });
    json!({
        "event_type": ty,
        "timestamp": skilljar_time(&e.updated_at),
        "user": {"first_name": c.first_name(), "last_name": c.last_name(), "id": e.learner_id, "email": c.email()},
        "course": {"id": e.course_id, "published_course_id": format!("pub-{}", e.course_id), "title": e.course_title,
                   "url": format!("https://lms-emulator.skilljar.com/{}", e.course_id.to_ascii_lowercase())},
        "domain": {"id": "lms-emulator", "name": "lms-emulator.skilljar.com"},
        "course_progress": {
            "enrolled_at": e.enrolled_at,
            "completed_at": opt(&e.completed_at),
            "percent_complete": e.progress_pct,
            "score": e.score
        }
    })
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The deliveries for the selected enrollments, in selection order (Docebo:
/// grouped by event type, each type in selection order).
pub fn deliveries(data: &Dataset, req: &EmitRequest, selected: &[u32]) -> Vec<Delivery> {
    let dialect = Dialect::parse(&req.dialect).unwrap_or(Dialect::Canonical);
    let per = req.events_per_delivery.clamp(1, dialect.max_events_per_delivery());
    let over = req.event_type.as_deref();
    let versions = versions(data, req.history, selected);
    if dialect == Dialect::Canonical {
        let events: Vec<Event> = versions
            .iter()
            .map(|(i, row)| canonical_event(data.render_enrollment(*i, row), row.updated_at, row.enrolled_at, over))
            .collect();
        return events
            .chunks(per)
            .map(|chunk| Delivery {
                body: serde_json::to_vec(&Body { events: chunk }).unwrap_or_default(),
                events: chunk.len(),
            })
            .collect();
    }
    let changes: Vec<Change> = versions.iter().map(|(i, row)| Change::of_version(data, *i, row)).collect();
    let one = |v: Value| Delivery { body: to_bytes(&v), events: 1 };
    match dialect {
        Dialect::Canonical => Vec::new(),
        Dialect::Thinkific => changes.iter().map(|c| one(thinkific_body(c, over))).collect(),
        Dialect::Northpass => changes.iter().map(|c| one(northpass_body(c, over))).collect(),
        Dialect::Skilljar => changes.iter().map(|c| one(skilljar_body(c, over))).collect(),
        Dialect::Docebo => {
            // Group by type, keeping each type's selection order.
            let mut groups: BTreeMap<ChangeKind, Vec<&Change>> = BTreeMap::new();
            for c in &changes {
                groups.entry(c.kind).or_default().push(c);
            }
            let mut out = Vec::new();
            for group in groups.values() {
                for chunk in group.chunks(per) {
                    let event =
                        over.unwrap_or_else(|| chunk.first().map_or("course.enrollment.updated", |c| docebo_event(c)));
                    out.push(Delivery { body: to_bytes(&docebo_body(chunk, event, per > 1)), events: chunk.len() });
                }
            }
            out
        }
    }
}

/// Builds the deliveries and the send order: originals first, then the re-sent
/// ones; everything shuffled when `reorder` is set, else `reorder_pct` of
/// the sends each moved to a random place. Deterministic (the data set's
/// seed and the request's `seed`).
pub fn plan(data: &Dataset, req: &EmitRequest, selected: &[u32]) -> Plan {
    let deliveries = deliveries(data, req, selected);
    let n = deliveries.len();
    let seed = data.params.map_or(0, |p| p.seed) ^ 0x5EED_F00D_DE11_7E27 ^ req.seed.unwrap_or(0).rotate_left(17);
    let mut rng = SplitMix64::new(seed);
    let duplicates = (n * req.duplicate_pct as usize + 50) / 100;
    let mut candidates: Vec<usize> = (0..n).collect();
    shuffle(&mut candidates, &mut rng);
    let mut dups: Vec<usize> = candidates.into_iter().take(duplicates).collect();
    dups.sort_unstable();
    let mut order: Vec<usize> = (0..n).collect();
    order.extend(dups);
    let mut reordered = 0;
    if req.reorder {
        shuffle(&mut order, &mut rng);
        reordered = order.len();
    } else if req.reorder_pct > 0 {
        reordered = displace(&mut order, req.reorder_pct, &mut rng);
    }
    Plan { deliveries, order, duplicates, reordered }
}

/// Takes `pct` percent of the sends out of `order` and puts each back at a
/// random place: how many moved.
fn displace(order: &mut Vec<usize>, pct: u32, rng: &mut SplitMix64) -> usize {
    let k = (order.len() * pct as usize + 50) / 100;
    let mut picks: Vec<usize> = (0..order.len()).collect();
    shuffle(&mut picks, rng);
    let mut picks: Vec<usize> = picks.into_iter().take(k).collect();
    picks.sort_unstable();
    let mut moved = Vec::with_capacity(k);
    for p in picks.iter().rev() {
        moved.push(order.remove(*p));
    }
    for send in moved {
        let at = usize::try_from(rng.below(order.len() as u64 + 1)).unwrap_or(0);
        order.insert(at, send);
    }
    k
}

fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Sends the deliveries.
pub async fn emit(state: &LmsState, req: EmitRequest) -> Result<EmitReport, String> {
    let data = state.data();
    let selected = select(&data, &req)?;
    let Plan { deliveries, order, duplicates, reordered } = plan(&data, &req, &selected);
    drop(data);
    let originals: usize = deliveries.iter().map(|d| d.events).sum();
    let sent: usize = order.iter().filter_map(|i| deliveries.get(*i)).map(|d| d.events).sum();
    let duplicate_events = sent.saturating_sub(originals);
    let dialect = Dialect::parse(&req.dialect).unwrap_or(Dialect::Canonical);
    let client = state.client().clone();
    let url = delivery_url(dialect, &req.target_url, req.secret.as_deref())?;
    let secret = req.secret.clone();
    let timestamp = req.timestamp;
    let results: Vec<(Option<u16>, usize)> =
        futures::stream::iter(order.into_iter().filter_map(|i| deliveries.get(i).cloned()))
            .map(|Delivery { body, events: n_events }| {
                let client = client.clone();
                let url = url.clone();
                let secret = secret.clone();
                async move {
                    let mut rb = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
                    match &secret {
                        Some(s) => {
                            let t = timestamp.unwrap_or_else(now_secs);
                            for (k, v) in auth_headers(dialect, s, t, &body) {
                                rb = rb.header(k, v);
                            }
                        }
                        None if dialect == Dialect::Skilljar => rb = rb.header("User-Agent", "skilljar"),
                        None => {}
                    }
                    let status = match rb.body(body).send().await {
                        Ok(resp) => Some(resp.status().as_u16()),
                        Err(e) => {
                            // Without the URL: for Skilljar it holds the token.
                            tracing::warn!(error = %e.without_url(), "webhook delivery failed");
                            None
                        }
                    };
                    (status, n_events)
                }
            })
            .buffer_unordered(req.concurrency.max(1))
            .collect()
            .await;
    let mut report = EmitReport { duplicates, duplicate_events, reordered, ..EmitReport::default() };
    for (status, n_events) in results {
        report.deliveries += 1;
        report.events += n_events;
        match status {
            Some(s) => *report.statuses.entry(s.to_string()).or_default() += 1,
            None => report.errors += 1,
        }
    }
    {
        let mut stats = state.stats();
        stats.webhooks_sent += report.deliveries as u64;
        stats.webhook_events_sent += report.events as u64;
        stats.webhook_errors += report.errors as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetParams, generate};

    fn data() -> Dataset {
        generate(DatasetParams { seed: 3, learners: 40, departments: 3, courses: 8, enrollments_per_learner: 3 })
    }

    fn req(dialect: &str, extra: Value) -> EmitRequest {
        let mut v = json!({"target_url": "http://127.0.0.1:9/webhooks/acme/lms", "dialect": dialect, "count": 60});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn bodies(d: &Dataset, r: &EmitRequest) -> Vec<Value> {
        let sel = select(d, r).unwrap();
        deliveries(d, r, &sel).iter().map(|x| serde_json::from_slice(&x.body).unwrap()).collect()
    }

    #[test]
    fn signature_format() {
        let s = sign("secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(sign_hex("secret", b"{}").len(), 64);
        assert_eq!(sign_base64("secret", b"{}").len(), 44);
        let h = auth_headers(Dialect::Northpass, "secret", 0, b"{}");
        assert_eq!(h, vec![(NORTHPASS_HEADER, sign_base64("secret", b"{}"))]);
        assert_eq!(auth_headers(Dialect::Skilljar, "secret", 0, b"{}")[0].0, "User-Agent");
    }

    #[test]
    fn the_skilljar_token_goes_in_the_path() {
        let u = delivery_url(Dialect::Skilljar, "http://h:1/webhooks/acme/sj", Some("tok/with space")).unwrap();
        assert_eq!(u, "http://h:1/webhooks/acme/sj/tok%2Fwith%20space");
        let u = delivery_url(Dialect::Skilljar, "http://h:1/webhooks/acme/sj/", Some("tok")).unwrap();
        assert_eq!(u, "http://h:1/webhooks/acme/sj/tok");
        let u = delivery_url(Dialect::Thinkific, "http://h:1/webhooks/acme/t", Some("tok")).unwrap();
        assert_eq!(u, "http://h:1/webhooks/acme/t");
    }

    #[test]
    fn every_dialect_renders_one_delivery_per_event_but_docebo() {
        let d = data();
        for dialect in ["thinkific", "northpass", "skilljar"] {
            let b = bodies(&d, &req(dialect, json!({})));
            assert_eq!(b.len(), 60, "{dialect}");
        }
        let t = bodies(&d, &req("thinkific", json!({})));
        assert!(t.iter().all(|b| b["resource"] == "enrollment"));
        assert!(t.iter().any(|b| b["action"] == "progress") && t.iter().any(|b| b["action"] == "completed"));
        assert!(t.iter().all(|b| b["id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit())));
        let n = bodies(&d, &req("northpass", json!({})));
        assert!(n.iter().all(|b| b["included"].as_array().unwrap().len() == 2));
        let ids: std::collections::HashSet<&str> = n.iter().map(|b| b["data"]["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 60, "distinct event ids");
        let s = bodies(&d, &req("skilljar", json!({})));
        assert!(s.iter().all(|b| b["timestamp"].as_str().unwrap().ends_with("000+00:00")));
    }

    #[test]
    fn docebo_groups_up_to_25_events_of_one_type() {
        let d = data();
        let r = req("docebo", json!({"count": 120, "events_per_delivery": 25}));
        let sel = select(&d, &r).unwrap();
        let ds = deliveries(&d, &r, &sel);
        assert_eq!(ds.iter().map(|x| x.events).sum::<usize>(), 120);
        for x in &ds {
            let v: Value = serde_json::from_slice(&x.body).unwrap();
            let ps = v["payloads"].as_array().unwrap();
            assert!(!ps.is_empty() && ps.len() <= 25);
            assert_eq!(ps.len(), x.events);
            // One type per delivery: the statuses agree with the event.
            let done = v["event"] == "course.enrollment.completed";
            assert!(ps.iter().all(|p| (p["status"] == "completed") == done), "{v}");
        }
        assert!(ds.iter().any(|x| x.events == 25));
        // Single-payload form with one event per delivery.
        let b = bodies(&d, &req("docebo", json!({"count": 3})));
        assert!(b.iter().all(|v| v["payload"].is_object() && v.get("payloads").is_none()));
        // Limits per dialect.
        for (dialect, n) in [("docebo", 26), ("thinkific", 2), ("canonical", 101)] {
            let r = req(dialect, json!({"events_per_delivery": n}));
            assert!(select(&d, &r).unwrap_err().contains("events_per_delivery"), "{dialect}");
        }
        assert!(select(&d, &req("moodle", json!({}))).unwrap_err().contains("unknown dialect 'moodle'"));
    }

    #[test]
    fn duplicates_and_reordering_apply_to_every_dialect() {
        let d = data();
        for dialect in Dialect::ALL {
            let r = req(dialect.as_str(), json!({"count": 40, "duplicate_pct": 25, "reorder": true}));
            let sel = select(&d, &r).unwrap();
            let p = plan(&d, &r, &sel);
            assert_eq!(p.duplicates, 10, "{}", dialect.as_str());
            assert_eq!(p.order.len(), 50);
            let mut sorted = p.order.clone();
            sorted.sort_unstable();
            assert_ne!(p.order, sorted, "{} reordered", dialect.as_str());
            let again = plan(&d, &r, &sel);
            assert_eq!(again.order, p.order, "deterministic");
        }
    }

    #[test]
    fn type_overrides_use_the_dialect_vocabulary() {
        let d = data();
        let b = bodies(&d, &req("thinkific", json!({"count": 1, "event_type": "enrollment.trial"})));
        assert_eq!((b[0]["resource"].as_str(), b[0]["action"].as_str()), (Some("enrollment"), Some("trial")));
        let b = bodies(&d, &req("skilljar", json!({"count": 1, "event_type": "PURCHASE"})));
        assert_eq!(b[0]["event_type"], "PURCHASE");
        let b = bodies(&d, &req("docebo", json!({"count": 1, "event_type": "user.created"})));
        assert_eq!(b[0]["event"], "user.created");
    }
}
