//! Bad input at every HTTP endpoint of the local stack (SPEC §4.1, §3.1,
//! §8; ARCHITECTURE "Bad input gets a clear answer"): every webhook dialect's
//! routes (webhook-ingest), the OAuth start and callback (oauth-callback), the
//! admin API (admin-api, and backfill-fanout's `POST …/backfills`) and the
//! health route (health-check). Each case is sent exactly as written (raw
//! HTTP/1.1: no path normalisation, no implicit headers) and its status and
//! stable error code are checked — the JSON `error.code` of the functions,
//! the page title of the OAuth pages (they are for people), or API Gateway's
//! own `{"message"}` for requests no route takes. Afterwards nothing was
//! enqueued (every queue and DLQ empty, the worker never invoked), nothing
//! was written to Salesforce, and DynamoDB and Secrets Manager hold exactly
//! what they held before the table ran.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_core::webhook::{canonical, docebo, northpass, thinkific};
use learnlink_e2e::{Env, Options, RawResponse, raw_request};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How long an OAuth state lives on this stack (to see an expired one).
const STATE_TTL_SECS: u64 = 3;

fn secret(source: &str) -> String {
    format!("whsec-bad-input-{source}-0123456789")
}

/// acme's webhook sources: (source name, dialect).
const SOURCES: [(&str, &str); 5] =
    [("lms", "canonical"), ("thk", "thinkific"), ("np", "northpass"), ("dcb", "docebo"), ("sj", "skilljar")];

/// What a refused request must answer besides its status.
#[derive(Debug, Clone)]
enum Want {
    /// `{"error": {"code": …, "message": …}}` from a function.
    Code(&'static str),
    /// API Gateway's own answer `{"message": …}` (no route, payload too large).
    Gateway(&'static str),
    /// An HTML page (the OAuth flow) with this title.
    Page(&'static str),
}

struct Case {
    what: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    want: Want,
}

fn case(what: impl Into<String>, method: &'static str, path: impl Into<String>, status: u16, want: Want) -> Case {
    Case { what: what.into(), method, path: path.into(), headers: Vec::new(), body: Vec::new(), status, want }
}

impl Case {
    fn method(mut self, m: &'static str) -> Case {
        self.method = m;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = body.into();
        self
    }
    fn json(self, v: &Value) -> Case {
        self.header("content-type", "application/json").body(v.to_string())
    }
    fn admin(self, token: &str) -> Case {
        self.header("authorization", format!("Bearer {token}"))
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

// ---- the dialects' bodies and signatures -----------------------------------------

/// A body of the dialect that would be accepted if signed right.
fn valid_body(dialect: &str) -> Value {
    let now = rfc3339(OffsetDateTime::now_utc());
    match dialect {
        "canonical" => json!({"events": [{"id": "evt-bad-1", "type": "enrollment.created", "occurred_at": now,
            "data": {"id": "E-bad-1", "learner_id": "L000001", "course_id": "C001", "status": "enrolled",
                     "progress_pct": 0, "updated_at": now}}]}),
        "thinkific" => json!({"id": "20260301100000123000042", "resource": "enrollment", "action": "progress",
            "tenant_id": "59", "created_at": "2026-03-01T10:00:00.123Z",
            "payload": {"activated_at": "2026-02-01T09:00:00.000Z", "course": {"id": 25, "name": "Security 201"},
                        "course_id": 25, "created_at": "2026-02-01T09:00:00.000Z", "expiry_date": null, "id": 4,
                        "percentage_completed": "24.0", "updated_at": "2026-03-01T10:00:00.000Z",
                        "user": {"email": "john@doe.com", "first_name": "John", "id": 95, "last_name": "Doe"}}}),
        "northpass" => json!({"data": {"id": "8f14e45f-ceea-467f-a8f0-000000000001",
            "type": "course_progress_updated_events",
            "attributes": {"created_at": "2026-03-01T10:00:05Z", "updated_at": "2026-03-01T10:00:00Z",
                           "status": "in_progress", "progress": 40},
            "relationships": {"enrollment": {"data": {"id": "E0000007", "type": "enrollments"}},
                              "learner": {"data": {"id": "L000003", "type": "people"}},
                              "course": {"data": {"id": "C002", "type": "courses"}}}},
            "included": [{"id": "C002", "type": "courses", "attributes": {"name": "Security 103"}}]}),
        "docebo" => json!({"message_id": "wh-5f1d7c", "webhook_id": 5, "original_domain": "acme.docebosaas.com",
            "event": "course.enrollment.updated", "fired_by_batch_action": false,
            "payloads": [docebo_payload(13006)]}),
        "skilljar" => json!({"event_type": "COURSE_ENROLLMENT", "timestamp": "2026-03-01T10:00:00.066475+00:00",
            "user": {"id": "3456789hijklmno", "email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"},
            "course": {"id": "12345abcdefg", "title": "Example Course"},
            "domain": {"id": "2345678defghij", "name": "example.skilljar.com"}}),
        other => panic!("no dialect {other}"),
    }
}

fn docebo_payload(user: u32) -> Value {
    json!({"fired_at": "2026-03-01 10:00:00", "user_id": user, "course_id": 91, "course_name": "Security 103",
           "enrollment_date": "2026-02-01 09:00:00", "status": "in_progress"})
}

/// The same body with its event type unknown to the dialect.
fn unknown_type_body(dialect: &str) -> Value {
    let mut b = valid_body(dialect);
    match dialect {
        "canonical" => b["events"][0]["type"] = json!("enrollment.deleted"),
        "thinkific" => b["action"] = json!("refunded"),
        "northpass" => b["data"]["type"] = json!("course_deleted_events"),
        "docebo" => b["event"] = json!("course.enrollment.deleted"),
        _ => b["event_type"] = json!("PURCHASE"),
    }
    b
}

/// The same body without a member the dialect requires.
fn missing_member_body(dialect: &str) -> Value {
    let mut b = valid_body(dialect);
    let removed = match dialect {
        "canonical" => b["events"][0].as_object_mut().unwrap().remove("id"),
        "thinkific" => b.as_object_mut().unwrap().remove("tenant_id"),
        "northpass" => b["data"].as_object_mut().unwrap().remove("relationships"),
        "docebo" => b.as_object_mut().unwrap().remove("message_id"),
        _ => b.as_object_mut().unwrap().remove("user"),
    };
    assert!(removed.is_some());
    b
}

/// The signature header of a header-signed dialect (None: Skilljar).
fn signature(dialect: &str, secret: &str, body: &[u8]) -> Option<(&'static str, String)> {
    match dialect {
        "canonical" => Some(("Learnlink-Signature", canonical::sign(secret, now(), body))),
        "thinkific" => Some(("X-Thinkific-Hmac-Sha256", thinkific::sign(secret, body))),
        "northpass" => Some(("X-Northpass-Hmac-SHA256", northpass::sign(secret, body))),
        "docebo" => Some(("X-Docebo-Signature", docebo::sign(secret, body))),
        _ => None,
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A delivery to acme's `source`, signed (or, for Skilljar, tokened) with
/// `secret`: method, path and headers.
fn delivery(source: &str, dialect: &str, secret: &str, body: &[u8], what: String, status: u16, want: Want) -> Case {
    match signature(dialect, secret, body) {
        Some((h, v)) => case(what, "POST", format!("/webhooks/acme/{source}"), status, want)
            .header("content-type", "application/json")
            .header(h, v)
            .body(body.to_vec()),
        None => case(what, "POST", format!("/webhooks/acme/{source}/{secret}"), status, want)
            .header("content-type", "application/json")
            .body(body.to_vec()),
    }
}

fn webhook_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let oversize = {
        let mut b = br#"{"pad":""#.to_vec();
        b.resize(learnlink_core::webhook::MAX_BODY_BYTES + 1 - 2, b'x');
        b.extend_from_slice(b"\"}");
        assert_eq!(b.len(), learnlink_core::webhook::MAX_BODY_BYTES + 1);
        b
    };
    for (source, dialect) in SOURCES {
        let d = |s: &str| format!("{dialect}: {s}");
        let good = secret(source);
        let body = valid_body(dialect).to_string().into_bytes();
        let signed =
            |what: &str, b: &[u8], status: u16, want: Want| delivery(source, dialect, &good, b, d(what), status, want);
        // Who: tenant and source.
        let sig = signature(dialect, &good, &body);
        let to = |path: String, what: &str, status: u16, want: Want| {
            let mut c = case(d(what), "POST", path, status, want).header("content-type", "application/json");
            if let Some((h, v)) = &sig {
                c = c.header(h, v.clone());
            }
            c.body(body.clone())
        };
        let tail = if sig.is_none() { format!("/{good}") } else { String::new() };
        cases.push(to(format!("/webhooks/nobody/{source}{tail}"), "unknown tenant", 404, Want::Code("unknown_tenant")));
        cases.push(to(
            format!("/webhooks/ACME/{source}{tail}"),
            "tenant id in capitals",
            404,
            Want::Code("unknown_tenant"),
        ));
        cases.push(to(format!("/webhooks/a/{source}{tail}"), "tenant id too short", 404, Want::Code("unknown_tenant")));
        cases.push(to(
            format!("/webhooks/acme%2F..%2Facme/{source}{tail}"),
            "tenant id with an encoded path traversal",
            404,
            Want::Code("unknown_tenant"),
        ));
        cases.push(to(format!("/webhooks/acme/{source}x{tail}"), "unknown source", 404, Want::Code("unknown_source")));
        cases.push(
            to(format!("/webhooks/acme/{source}{tail}"), "GET instead of POST", 404, Want::Gateway("Not Found"))
                .method("GET"),
        );
        // One segment more: a signed source's path is then its (nonexistent)
        // token route; a Skilljar token route has no route below it.
        let extra = if sig.is_none() { Want::Gateway("Not Found") } else { Want::Code("unknown_route") };
        cases.push(to(format!("/webhooks/acme/{source}{tail}/extra"), "an extra path segment", 404, extra));
        // Authentication.
        let keyed = |key: &str, what: &str, code: &'static str| {
            delivery(source, dialect, key, &body, d(what), 401, Want::Code(code))
        };
        let bare = |what: &str, path: String, status: u16, want: Want| {
            case(d(what), "POST", path, status, want).json(&valid_body(dialect))
        };
        let unknown_type = unknown_type_body(dialect).to_string();
        cases.push(signed("unknown event type", unknown_type.as_bytes(), 400, Want::Code("unknown_event_type")));
        match sig.clone() {
            None => {
                let path = format!("/webhooks/acme/{source}");
                cases.push(bare("no token in the URL", path.clone(), 401, Want::Code("missing_token")));
                cases.push(bare("an empty token", format!("{path}/"), 404, Want::Gateway("Not Found")));
                cases.push(keyed("wrong-token-0123456789", "a wrong token", "invalid_token"));
                cases.push(keyed(&secret("lms"), "another source's secret as token", "invalid_token"));
                cases.push(keyed(&format!("{good}x"), "the token with one more character", "invalid_token"));
                cases.push(keyed("wrong%2Ftoken", "a percent-encoded wrong token", "invalid_token"));
            }
            Some((h, _)) => {
                let path = format!("/webhooks/acme/{source}");
                cases.push(bare("no signature", path.clone(), 401, Want::Code("missing_signature")));
                // Every dialect takes an empty header for a missing one.
                cases
                    .push(bare("an empty signature", path.clone(), 401, Want::Code("missing_signature")).header(h, ""));
                cases.push(keyed("whsec-wrong-0123456789", "signed with a wrong secret", "invalid_signature"));
                let other = secret(if source == "lms" { "thk" } else { "lms" });
                cases.push(keyed(&other, "signed with another source's secret", "invalid_signature"));
                let garbage = if dialect == "canonical" { "t=abc,v1=zz" } else { "not-a-signature" };
                let not_one =
                    case(d("a signature that is not one"), "POST", path, 401, Want::Code("invalid_signature"));
                cases.push(not_one.header(h, garbage).body(body.clone()));
                // The signature of another body: one byte of the body changed after signing.
                let mut tampered = keyed(&good, "a body changed after signing", "invalid_signature");
                let at = tampered.body.iter().position(|b| *b == b'1').unwrap();
                tampered.body[at] = b'2';
                cases.push(tampered);
                let token_route = format!("/webhooks/acme/{source}/{good}");
                let route =
                    bare("a token in the URL of a signed source", token_route, 404, Want::Code("unknown_route"));
                cases.push(route);
            }
        }
        // The body.
        cases.push(signed("malformed JSON", br#"{"events": [{"id": "e1",}"#, 400, Want::Code("malformed_body")));
        cases.push(signed("empty body", b"", 400, Want::Code("malformed_body")));
        cases.push(signed("a JSON array", b"[]", 400, Want::Code("malformed_body")));
        cases.push(signed(
            "a required member missing",
            missing_member_body(dialect).to_string().as_bytes(),
            400,
            Want::Code("malformed_body"),
        ));
        cases.push(signed("binary, not UTF-8", &[0xff, 0xfe, 0x00, 0x80, 0x7b], 400, Want::Code("malformed_body")));
        let mut form = signed(
            "a form-encoded body (wrong content type)",
            b"events=1&type=enrollment.created",
            400,
            Want::Code("malformed_body"),
        );
        form.headers.retain(|(k, _)| *k != "content-type");
        cases.push(form.header("content-type", "application/x-www-form-urlencoded"));
        cases.push(signed("a body over 1 MiB", &oversize, 413, Want::Code("body_too_large")));
    }
    // Dialect-specific rules.
    let lms = |what: &str, b: &Value, status: u16, want: Want| {
        delivery(
            "lms",
            "canonical",
            &secret("lms"),
            b.to_string().as_bytes(),
            format!("canonical: {what}"),
            status,
            want,
        )
    };
    let body = valid_body("canonical").to_string();
    let at = |t: i64| canonical::sign(&secret("lms"), t, body.as_bytes());
    for (what, header) in [
        ("a timestamp 10 minutes old (replay window)", at(now() - 600)),
        ("a timestamp 10 minutes ahead", at(now() + 600)),
    ] {
        cases.push(
            case(format!("canonical: {what}"), "POST", "/webhooks/acme/lms", 401, Want::Code("stale_timestamp"))
                .header("Learnlink-Signature", header)
                .body(body.clone()),
        );
    }
    let v1_only = at(now()).split(',').nth(1).unwrap().to_string();
    cases.push(
        case(
            "canonical: a signature without its timestamp",
            "POST",
            "/webhooks/acme/lms",
            401,
            Want::Code("invalid_signature"),
        )
        .header("Learnlink-Signature", v1_only)
        .body(body.clone()),
    );
    cases.push(lms("no events", &json!({"events": []}), 400, Want::Code("malformed_body")));
    let mut many = valid_body("canonical");
    let one = many["events"][0].clone();
    many["events"] = (0..101)
        .map(|i| {
            let mut e = one.clone();
            e["id"] = json!(format!("evt-{i}"));
            e
        })
        .collect::<Vec<_>>()
        .into();
    cases.push(lms("101 events in one delivery", &many, 400, Want::Code("malformed_body")));
    let mut unknown = valid_body("canonical");
    unknown["tenant"] = json!("other");
    cases.push(lms("an unknown member", &unknown, 400, Want::Code("malformed_body")));
    let mut progress = valid_body("canonical");
    progress["events"][0]["data"]["progress_pct"] = json!(150);
    cases.push(lms("progress of 150 %", &progress, 400, Want::Code("malformed_body")));
    let mut control = valid_body("canonical");
    control["events"][0]["id"] = json!("evt\u{1}1");
    cases.push(lms("a control character in an id", &control, 400, Want::Code("malformed_body")));
    let mut date = valid_body("canonical");
    date["events"][0]["data"]["updated_at"] = json!("yesterday");
    cases.push(lms("a date that is not RFC 3339", &date, 400, Want::Code("malformed_body")));
    let dcb = |what: &str, b: &Value| {
        delivery(
            "dcb",
            "docebo",
            &secret("dcb"),
            b.to_string().as_bytes(),
            format!("docebo: {what}"),
            400,
            Want::Code("malformed_body"),
        )
    };
    let mut group = valid_body("docebo");
    group["payloads"] = (0..26).map(docebo_payload).collect::<Vec<_>>().into();
    cases.push(dcb("26 payloads in one delivery", &group));
    let mut mixed = valid_body("docebo");
    let mut other = docebo_payload(2);
    other["event"] = json!("course.enrollment.completed");
    mixed["payloads"] = json!([docebo_payload(1), other]);
    cases.push(dcb("payloads of two event types", &mixed));
    let mut both = valid_body("docebo");
    both["payload"] = docebo_payload(3);
    cases.push(dcb("both payload and payloads", &both));
    // Over the gateway's own limits.
    cases.push(
        case(
            "canonical: a 7 MB body (over the Lambda payload limit)",
            "POST",
            "/webhooks/acme/lms",
            413,
            Want::Gateway("Request Entity Too Large"),
        )
        .header("content-type", "application/json")
        .body(vec![b' '; 7 * 1024 * 1024]),
    );
    cases
}

// ---- the admin API -----------------------------------------------------------------

fn admin_cases(env: &Env) -> Vec<Case> {
    let t = env.admin_token.as_str();
    let get = |what: &str, path: &str, status: u16, code: &'static str| {
        case(what, "GET", path, status, Want::Code(code)).admin(t)
    };
    let send = |what: &str, method: &'static str, path: &str, body: &str, status: u16, code: &'static str| {
        case(what, method, path, status, Want::Code(code))
            .admin(t)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let config = env.tenant_config("acme", &secret("lms"));
    let mut invalid = config.clone();
    invalid["name"] = json!("");
    invalid["sync"] = json!({"matching_field": "9x"});
    let mut no_secret = env.tenant_config("newco", "x");
    no_secret["webhooks"]["sources"][0].as_object_mut().unwrap().remove("secrets");
    let mut cases = vec![
        // Authentication comes first, for every route, known or not.
        case("no credential", "GET", "/admin/tenants", 401, Want::Code("unauthorized")),
        case("no credential, unknown route", "GET", "/admin/nothing", 401, Want::Code("unauthorized")),
        case("no credential, PUT config", "PUT", "/admin/tenants/acme/config", 401, Want::Code("unauthorized"))
            .json(&config),
        case("no credential, all DLQs", "GET", "/admin/dlq", 401, Want::Code("unauthorized")),
        case("a wrong token", "GET", "/admin/tenants", 401, Want::Code("unauthorized")).admin("wrong-token"),
        case("the token with one more character", "GET", "/admin/tenants", 401, Want::Code("unauthorized"))
            .admin(&format!("{t}x")),
        case("the token as Basic credentials", "GET", "/admin/tenants", 401, Want::Code("unauthorized"))
            .header("authorization", format!("Basic {t}")),
        case("the token without its scheme", "GET", "/admin/tenants", 401, Want::Code("unauthorized"))
            .header("authorization", t.to_string()),
        case("the scheme without a token", "GET", "/admin/tenants", 401, Want::Code("unauthorized"))
            .header("authorization", "Bearer "),
        case("the token in capitals", "GET", "/admin/tenants", 401, Want::Code("unauthorized"))
            .admin(&t.to_uppercase()),
        case(
            "the token in the query string",
            "GET",
            format!("/admin/tenants?access_token={t}"),
            401,
            Want::Code("unauthorized"),
        ),
        // Routes.
        get("unknown route", "/admin/nothing", 404, "not_found"),
        get("unknown route under a tenant", "/admin/tenants/acme/secrets", 404, "not_found"),
        get("an extra path segment", "/admin/tenants/acme/config/extra", 404, "not_found"),
        case("DELETE a tenant (no such operation)", "DELETE", "/admin/tenants/acme", 404, Want::Code("not_found"))
            .admin(t),
        case("PATCH config (no such operation)", "PATCH", "/admin/tenants/acme/config", 404, Want::Code("not_found"))
            .admin(t)
            .json(&config),
        case("a path traversal", "GET", "/admin/tenants/acme/../nobody/config", 404, Want::Code("not_found")).admin(t),
        case("outside /admin/", "GET", "/admin", 404, Want::Gateway("Not Found")).admin(t),
        case("no route at all", "GET", "/nothing", 404, Want::Gateway("Not Found")).admin(t),
        // Tenant ids.
        get("unknown tenant", "/admin/tenants/nobody", 404, "unknown_tenant"),
        get("tenant id in capitals", "/admin/tenants/ACME/config", 404, "unknown_tenant"),
        get("tenant id of one character", "/admin/tenants/a/config", 404, "unknown_tenant"),
        get("tenant id of 64 characters", &format!("/admin/tenants/{}/config", "a".repeat(64)), 404, "unknown_tenant"),
        get("tenant id starting with a dash", "/admin/tenants/-acme/status", 404, "unknown_tenant"),
        get("tenant id percent-encoded", "/admin/tenants/%61cme/config", 404, "unknown_tenant"),
        get("tenant id with an encoded traversal", "/admin/tenants/x%2F..%2Facme/config", 404, "unknown_tenant"),
        get("unknown tenant: status", "/admin/tenants/nobody/status", 404, "unknown_tenant"),
        get("unknown tenant: versions", "/admin/tenants/nobody/config/versions", 404, "unknown_tenant"),
        get("unknown tenant: diff", "/admin/tenants/nobody/config/diff", 404, "unknown_tenant"),
        get("unknown tenant: activity", "/admin/tenants/nobody/activity", 404, "unknown_tenant"),
        get("unknown tenant: runs", "/admin/tenants/nobody/runs", 404, "unknown_tenant"),
        get("unknown tenant: review", "/admin/tenants/nobody/review", 404, "unknown_tenant"),
        get("unknown tenant: dlq", "/admin/tenants/nobody/dlq", 404, "unknown_tenant"),
        get("unknown tenant: imports", "/admin/tenants/nobody/imports", 404, "unknown_tenant"),
        get("unknown tenant: backfills", "/admin/tenants/nobody/backfills", 404, "unknown_tenant"),
        get(
            "unknown tenant: export",
            "/admin/tenants/nobody/exports/enrollments?since=2026-01-01T00:00:00Z",
            404,
            "unknown_tenant",
        ),
        send(
            "unknown tenant: PUT config",
            "PUT",
            "/admin/tenants/nobody/config",
            &config.to_string(),
            404,
            "unknown_tenant",
        ),
        send("unknown tenant: dlq replay", "POST", "/admin/tenants/nobody/dlq/replay", "", 404, "unknown_tenant"),
        // Creating a tenant.
        send("create: malformed JSON", "POST", "/admin/tenants", "{\"id\": \"newco\",", 400, "malformed_body"),
        send("create: empty body", "POST", "/admin/tenants", "", 400, "malformed_body"),
        case(
            "create: a form-encoded body (wrong content type)",
            "POST",
            "/admin/tenants",
            400,
            Want::Code("malformed_body"),
        )
        .admin(t)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("id=newco&config=x"),
        send("create: a JSON array", "POST", "/admin/tenants", "[]", 422, "invalid_tenant"),
        send(
            "create: an invalid tenant id",
            "POST",
            "/admin/tenants",
            &json!({"id": "New_Co", "config": env.tenant_config("newco", "s")}).to_string(),
            422,
            "invalid_tenant",
        ),
        send(
            "create: a path in the tenant id",
            "POST",
            "/admin/tenants",
            &json!({"id": "../acme", "config": env.tenant_config("newco", "s")}).to_string(),
            422,
            "invalid_tenant",
        ),
        send("create: no config", "POST", "/admin/tenants", &json!({"id": "newco"}).to_string(), 422, "invalid_tenant"),
        send(
            "create: an unknown member",
            "POST",
            "/admin/tenants",
            &json!({"id": "newco", "config": env.tenant_config("newco", "s"), "admin": true}).to_string(),
            422,
            "invalid_tenant",
        ),
        send(
            "create: an invalid config",
            "POST",
            "/admin/tenants",
            &json!({"id": "newco", "config": invalid}).to_string(),
            422,
            "invalid_tenant",
        ),
        send(
            "create: a signed source without a secret",
            "POST",
            "/admin/tenants",
            &json!({"id": "newco", "config": no_secret}).to_string(),
            422,
            "invalid_tenant",
        ),
        send(
            "create: an existing tenant",
            "POST",
            "/admin/tenants",
            &json!({"id": "acme", "config": config}).to_string(),
            409,
            "tenant_exists",
        ),
        // Configuration.
        send("config: malformed JSON", "PUT", "/admin/tenants/acme/config", "{\"name\":", 400, "malformed_body"),
        send("config: empty body", "PUT", "/admin/tenants/acme/config", "", 400, "malformed_body"),
        send("config: invalid", "PUT", "/admin/tenants/acme/config", &invalid.to_string(), 422, "invalid_config"),
        send("config: a JSON string", "PUT", "/admin/tenants/acme/config", "\"x\"", 422, "invalid_config"),
        send(
            "config: If-Match not a version",
            "PUT",
            "/admin/tenants/acme/config",
            &config.to_string(),
            400,
            "invalid_parameter",
        )
        .header("if-match", "\"abc\""),
        send(
            "config: If-Match of another version",
            "PUT",
            "/admin/tenants/acme/config",
            &config.to_string(),
            409,
            "version_conflict",
        )
        .header("if-match", "\"7\""),
        send(
            "config validate: invalid",
            "POST",
            "/admin/tenants/acme/config/validate",
            &invalid.to_string(),
            422,
            "invalid_config",
        ),
        send(
            "config validate: malformed",
            "POST",
            "/admin/tenants/acme/config/validate",
            "nope",
            400,
            "malformed_body",
        ),
        get("config: version 0", "/admin/tenants/acme/config?version=0", 400, "invalid_parameter"),
        get("config: version not a number", "/admin/tenants/acme/config?version=latest", 400, "invalid_parameter"),
        get("config: version -1", "/admin/tenants/acme/config?version=-1", 400, "invalid_parameter"),
        get("config: unknown version", "/admin/tenants/acme/config?version=7", 404, "unknown_version"),
        get("diff: from not a number", "/admin/tenants/acme/config/diff?from=one", 400, "invalid_parameter"),
        get("diff: unknown version", "/admin/tenants/acme/config/diff?to=9", 404, "unknown_version"),
        // Activity, runs.
        get("activity: unknown outcome", "/admin/tenants/acme/activity?outcome=great", 400, "invalid_parameter"),
        get("activity: limit 0", "/admin/tenants/acme/activity?limit=0", 400, "invalid_parameter"),
        get("activity: limit 1001", "/admin/tenants/acme/activity?limit=1001", 400, "invalid_parameter"),
        get("activity: since not RFC 3339", "/admin/tenants/acme/activity?since=yesterday", 400, "invalid_parameter"),
        get("activity: until not RFC 3339", "/admin/tenants/acme/activity?until=2026-13-01", 400, "invalid_parameter"),
        get("activity: format xml", "/admin/tenants/acme/activity?format=xml", 400, "invalid_parameter"),
        get("activity: empty learner", "/admin/tenants/acme/activity?learner=", 400, "invalid_parameter"),
        get("activity: a forged cursor", "/admin/tenants/acme/activity?cursor=bm90LWEtY3Vyc29y", 400, "invalid_cursor"),
        get("runs: limit not a number", "/admin/tenants/acme/runs?limit=ten", 400, "invalid_parameter"),
        // Review queue.
        get("review: limit 0", "/admin/tenants/acme/review?limit=0", 400, "invalid_parameter"),
        get("review: a forged cursor", "/admin/tenants/acme/review?cursor=b3RoZXI6TDE", 400, "invalid_cursor"),
        send("resolve: malformed JSON", "POST", "/admin/tenants/acme/review/L1/resolve", "{", 400, "malformed_body"),
        send(
            "resolve: empty contact",
            "POST",
            "/admin/tenants/acme/review/L1/resolve",
            r#"{"contact_id": " "}"#,
            400,
            "malformed_body",
        ),
        send(
            "resolve: an unknown member",
            "POST",
            "/admin/tenants/acme/review/L1/resolve",
            r#"{"contact_id": "003000000000001AAA", "force": true}"#,
            400,
            "malformed_body",
        ),
        send("resolve: a JSON array", "POST", "/admin/tenants/acme/review/L1/resolve", "[]", 400, "malformed_body"),
        send(
            "resolve: unknown learner",
            "POST",
            "/admin/tenants/acme/review/L1/resolve",
            r#"{"contact_id": "003000000000001AAA"}"#,
            404,
            "unknown_learner",
        ),
        send(
            "resolve: a learner id that is not UTF-8",
            "POST",
            "/admin/tenants/acme/review/%FF/resolve",
            r#"{"contact_id": "003000000000001AAA"}"#,
            404,
            "unknown_learner",
        ),
        // Dead-letter queue.
        send("dlq replay: malformed JSON", "POST", "/admin/tenants/acme/dlq/replay", "{", 400, "malformed_body"),
        send(
            "dlq replay: no ids",
            "POST",
            "/admin/tenants/acme/dlq/replay",
            r#"{"message_ids": []}"#,
            400,
            "malformed_body",
        ),
        send(
            "dlq replay: ids not a list",
            "POST",
            "/admin/tenants/acme/dlq/replay",
            r#"{"message_ids": "m1"}"#,
            400,
            "malformed_body",
        ),
        send(
            "dlq replay: an unknown member",
            "POST",
            "/admin/tenants/acme/dlq/replay",
            r#"{"ids": ["m1"]}"#,
            400,
            "malformed_body",
        ),
        send("dlq replay: a JSON array", "POST", "/admin/tenants/acme/dlq/replay", "[\"m1\"]", 400, "malformed_body"),
        send(
            "dlq replay: an unknown message",
            "POST",
            "/admin/tenants/acme/dlq/replay",
            r#"{"message_ids": ["m-none"]}"#,
            404,
            "unknown_message",
        ),
        // Imports.
        send(
            "import: a tenant without an import source",
            "POST",
            "/admin/tenants/acme/imports",
            "{}",
            409,
            "no_import_source",
        ),
        send(
            "import preview: a tenant without an import source",
            "POST",
            "/admin/tenants/acme/imports/preview",
            "",
            409,
            "no_import_source",
        ),
        send(
            "import: dry_run not a boolean",
            "POST",
            "/admin/tenants/imp/imports",
            r#"{"dry_run": "yes"}"#,
            400,
            "invalid_field",
        ),
        send(
            "import: an unknown member",
            "POST",
            "/admin/tenants/imp/imports",
            r#"{"dry_run": true, "all": 1}"#,
            400,
            "invalid_field",
        ),
        send("import: malformed JSON", "POST", "/admin/tenants/imp/imports", "{\"dry_run\"", 400, "malformed_body"),
        send("import: a JSON array", "POST", "/admin/tenants/imp/imports", "[true]", 400, "malformed_body"),
        send("import: a JSON number", "POST", "/admin/tenants/imp/imports", "42", 400, "malformed_body"),
        send(
            "import preview: limit 0",
            "POST",
            "/admin/tenants/imp/imports/preview?limit=0",
            "",
            400,
            "invalid_parameter",
        ),
        send(
            "import preview: limit 2001",
            "POST",
            "/admin/tenants/imp/imports/preview?limit=2001",
            "",
            400,
            "invalid_parameter",
        ),
        // Backfills (admin-api).
        get("backfills: limit 0", "/admin/tenants/acme/backfills?limit=0", 400, "invalid_parameter"),
        get("backfills: limit 101", "/admin/tenants/acme/backfills?limit=101", 400, "invalid_parameter"),
        get("backfill: an invalid id", "/admin/tenants/acme/backfills/bf.1", 400, "invalid_backfill_id"),
        get(
            "backfill: an id of 65 characters",
            &format!("/admin/tenants/acme/backfills/{}", "b".repeat(65)),
            400,
            "invalid_backfill_id",
        ),
        get("backfill: shards=maybe", "/admin/tenants/acme/backfills/bf-none?shards=maybe", 400, "invalid_parameter"),
        get("backfill: unknown", "/admin/tenants/acme/backfills/bf-none", 404, "backfill_not_found"),
        send(
            "backfill cancel: unknown",
            "POST",
            "/admin/tenants/acme/backfills/bf-none/cancel",
            "",
            404,
            "backfill_not_found",
        ),
        send(
            "backfill cancel: an invalid id",
            "POST",
            "/admin/tenants/acme/backfills/bf%20x/cancel",
            "",
            400,
            "invalid_backfill_id",
        ),
        // Exports.
        get("export: no since", "/admin/tenants/acme/exports/enrollments", 400, "invalid_parameter"),
        get(
            "export: since not RFC 3339",
            "/admin/tenants/acme/exports/enrollments?since=90d",
            400,
            "invalid_parameter",
        ),
        get(
            "export: until before since",
            "/admin/tenants/acme/exports/enrollments?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            400,
            "invalid_window",
        ),
        get(
            "export: a cursor of 2049 characters",
            &format!("/admin/tenants/acme/exports/enrollments?since=2026-01-01T00:00:00Z&cursor={}", "c".repeat(2049)),
            400,
            "invalid_cursor",
        ),
        get(
            "export: a tenant without an LMS",
            "/admin/tenants/acme/exports/enrollments?since=2026-01-01T00:00:00Z",
            409,
            "not_configured",
        ),
        // Over the gateway's limit.
        case(
            "a 7 MB body (over the Lambda payload limit)",
            "PUT",
            "/admin/tenants/acme/config",
            413,
            Want::Gateway("Request Entity Too Large"),
        )
        .admin(t)
        .header("content-type", "application/json")
        .body(vec![b' '; 7 * 1024 * 1024]),
    ];
    // backfill-fanout's route: POST /admin/tenants/{tenant}/backfills.
    let start = |what: &str, tenant: &str, body: &str, status: u16, code: &'static str| {
        send(
            &format!("backfill start: {what}"),
            "POST",
            &format!("/admin/tenants/{tenant}/backfills"),
            body,
            status,
            code,
        )
    };
    let since = r#"{"since": "2026-01-01T00:00:00Z"}"#;
    cases.extend([
        case("backfill start: no credential", "POST", "/admin/tenants/acme/backfills", 401, Want::Code("unauthorized"))
            .header("content-type", "application/json")
            .body(since),
        case("backfill start: a wrong token", "POST", "/admin/tenants/acme/backfills", 401, Want::Code("unauthorized"))
            .admin("nope")
            .body(since),
        start("malformed JSON", "acme", "{\"since\"", 400, "malformed_body"),
        start("empty body", "acme", "", 400, "malformed_body"),
        start("no since", "acme", r#"{"until": "2026-01-01T00:00:00Z"}"#, 400, "invalid_field"),
        start("since not RFC 3339", "acme", r#"{"since": "last week"}"#, 400, "invalid_field"),
        start(
            "until before since",
            "acme",
            r#"{"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}"#,
            400,
            "invalid_window",
        ),
        start("an unknown member", "acme", r#"{"since": "2026-01-01T00:00:00Z", "shards": 3}"#, 400, "invalid_field"),
        start(
            "only_changed not a boolean",
            "acme",
            r#"{"since": "2026-01-01T00:00:00Z", "only_changed": "yes"}"#,
            400,
            "invalid_field",
        ),
        start("tenant id in capitals", "ACME", since, 404, "unknown_tenant"),
        start("tenant id with an encoded traversal", "x%2F..%2Facme", since, 404, "unknown_tenant"),
        start("unknown tenant", "nobody", since, 404, "unknown_tenant"),
        start("a tenant without an LMS", "acme", since, 409, "not_configured"),
        start("a tenant not connected to Salesforce", "withlms", since, 409, "not_connected"),
    ]);
    cases
}

// ---- health, OAuth -----------------------------------------------------------------

fn health_cases(env: &Env) -> Vec<Case> {
    let t = env.admin_token.as_str();
    let health = |what: &str, method: &'static str, path: &str, status: u16, want: Want| {
        case(format!("health: {what}"), method, path, status, want).admin(t)
    };
    vec![
        // The admin credential comes first, as on the admin API: nothing about a
        // tenant, not even whether it exists, without it.
        case("health: no token", "GET", "/health/acme", 401, Want::Code("unauthorized")),
        case("health: no token, unknown tenant", "GET", "/health/nobody", 401, Want::Code("unauthorized")),
        case("health: a wrong token", "GET", "/health/acme", 401, Want::Code("unauthorized")).admin("wrong-token"),
        case("health: the token with one more character", "GET", "/health/acme", 401, Want::Code("unauthorized"))
            .admin(&format!("{t}x")),
        case("health: the token without its scheme", "GET", "/health/acme", 401, Want::Code("unauthorized"))
            .header("authorization", t.to_string()),
        case("health: a webhook secret as the token", "GET", "/health/acme", 401, Want::Code("unauthorized"))
            .admin(&secret("lms")),
        case(
            "health: the token in the query string",
            "GET",
            format!("/health/acme?access_token={t}"),
            401,
            Want::Code("unauthorized"),
        ),
        // With the token.
        health("unknown tenant", "GET", "/health/nobody", 404, Want::Code("unknown_tenant")),
        health("tenant id in capitals", "GET", "/health/ACME", 404, Want::Code("unknown_tenant")),
        health(
            "tenant id of 64 characters",
            "GET",
            &format!("/health/{}", "a".repeat(64)),
            404,
            Want::Code("unknown_tenant"),
        ),
        health(
            "tenant id with an encoded traversal",
            "GET",
            "/health/x%2F..%2Facme",
            404,
            Want::Code("unknown_tenant"),
        ),
        health("tenant id not UTF-8", "GET", "/health/%FF%FE", 404, Want::Code("unknown_tenant")),
        health("POST", "POST", "/health/acme", 404, Want::Gateway("Not Found")),
        health("no tenant", "GET", "/health/", 404, Want::Gateway("Not Found")),
        health("an extra segment", "GET", "/health/acme/details", 404, Want::Gateway("Not Found")),
    ]
}

const CANNOT_USE: &str = "This sign-in link cannot be used";

/// OAuth cases; `{STATE}` in a path is replaced by a state just started for
/// acme (a fresh one per case), `{EXPIRED}` by one started earlier and past
/// its lifetime, `{REPLAY}` by the query of a callback already used.
fn oauth_cases() -> Vec<Case> {
    let cb = |what: &str, query: &str, status: u16, title: &'static str| {
        case(format!("oauth callback: {what}"), "GET", format!("/oauth/callback{query}"), status, Want::Page(title))
    };
    vec![
        cb("no parameters", "", 400, CANNOT_USE),
        cb("no state", "?code=aPrx8", 400, CANNOT_USE),
        cb("an empty state", "?state=&code=aPrx8", 400, CANNOT_USE),
        cb("a forged state", "?state=forged-state-0123456789abcdef&code=aPrx8", 400, CANNOT_USE),
        cb("a state with a quote and a tag", "?state=%27%3Cscript%3E&code=x", 400, CANNOT_USE),
        cb("an expired state", "?state={EXPIRED}&code=aPrx8", 400, CANNOT_USE),
        cb("a state used already (replayed callback)", "?{REPLAY}", 400, CANNOT_USE),
        cb("a fresh state, no code", "?state={STATE}", 400, CANNOT_USE),
        cb(
            "a fresh state, error=access_denied",
            "?state={STATE}&error=access_denied&error_description=end-user+denied+authorization",
            400,
            "Salesforce did not grant access",
        ),
        cb(
            "a fresh state, a forged code",
            "?state={STATE}&code=forged-code",
            400,
            "The connection could not be completed",
        ),
        case("oauth callback: POST", "POST", "/oauth/callback?state=x&code=y", 404, Want::Gateway("Not Found")),
        case("oauth start: unknown tenant", "GET", "/oauth/nobody/start", 404, Want::Page("Unknown tenant")),
        case("oauth start: tenant id in capitals", "GET", "/oauth/ACME/start", 404, Want::Page("Unknown tenant")),
        case(
            "oauth start: tenant id with an encoded traversal",
            "GET",
            "/oauth/x%2F..%2Facme/start",
            404,
            Want::Page("Unknown tenant"),
        ),
        case("oauth start: POST", "POST", "/oauth/acme/start", 404, Want::Gateway("Not Found")),
        case("oauth: no such page", "GET", "/oauth/acme", 404, Want::Gateway("Not Found")),
    ]
}

/// Start acme's OAuth flow: the state of the authorize URL.
async fn start_state(env: &Env) -> String {
    let r = raw_request(&env.endpoints.api_url, "GET", "/oauth/acme/start", &[], b"").await.unwrap();
    assert_eq!(r.status, 302, "{}", r.text());
    let location = url::Url::parse(r.header("location").unwrap()).unwrap();
    location.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned()
}

fn check(c: &Case, r: &RawResponse) -> Result<(), String> {
    let body = r.text();
    let shown: String = body.chars().take(400).collect();
    let fail = |why: String| Err(format!("{} ({} {}): {why}; got {} {shown}", c.what, c.method, c.path, r.status));
    if r.status != c.status {
        return fail(format!("expected status {}", c.status));
    }
    match &c.want {
        Want::Code(code) => {
            let v = r.json();
            if !r.header("content-type").is_some_and(|t| t.starts_with("application/json")) {
                return fail("expected a JSON answer".into());
            }
            if v["error"]["code"] != *code {
                return fail(format!("expected error code {code}"));
            }
            if v["error"]["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
                return fail("the error has no sentence".into());
            }
            let keys: Vec<&String> = v["error"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
            if keys.iter().any(|k| !["code", "message", "violations"].contains(&k.as_str())) {
                return fail("unexpected members in the error".into());
            }
        }
        Want::Gateway(message) => {
            if r.json()["message"] != *message {
                return fail(format!("expected the gateway's {message:?}"));
            }
        }
        Want::Page(title) => {
            if !r.header("content-type").is_some_and(|t| t.starts_with("text/html")) {
                return fail("expected an HTML page".into());
            }
            if !body.contains(&format!("<title>learnlink: {title}</title>")) {
                return fail(format!("expected the page {title:?}"));
            }
            if r.header("cache-control") != Some("no-store") {
                return fail("the page may be cached".into());
            }
            if body.contains("<script") {
                return fail("the page echoes markup it was sent".into());
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_endpoint_refuses_bad_input_with_its_code_and_stores_nothing() {
    let started = Instant::now();
    let opts = Options {
        // No schedule fires during the test: what the stack holds changes only by the requests.
        parameters: vec![
            ("HealthScheduleExpression".into(), "rate(1 day)".into()),
            ("ImportScheduleExpression".into(), "rate(1 day)".into()),
        ],
        function_env: vec![("OAUTH_STATE_TTL_SECS".into(), STATE_TTL_SECS.to_string())],
        ..Options::default()
    };
    let env = Env::start("bad-input", opts).unwrap();
    // acme: one webhook source per dialect, no LMS, never connected.
    let mut config = env.tenant_config("acme", &secret("lms"));
    config["webhooks"]["sources"] = SOURCES
        .iter()
        .map(|(s, d)| json!({"name": s, "dialect": d, "secrets": [secret(s)]}))
        .collect::<Vec<_>>()
        .into();
    let (s, v) = env
        .admin(reqwest::Method::POST, "/admin/tenants", Some(json!({"id": "acme", "config": config})))
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");
    env.create_tenant_with_import("imp", &secret("imp"), json!({"source": "salesforce_user"})).await.unwrap();
    env.create_tenant_with_lms("withlms", &secret("withlms"), json!({})).await.unwrap();
    // conn: connected; its callback, replayed later, is refused.
    env.create_tenant("conn", &secret("conn")).await.unwrap();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let authorize =
        client.get(env.connect_url("conn")).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    let back = client.get(authorize).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    let done = client.get(&back).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200, "{}", done.text().await.unwrap());
    let replay = url::Url::parse(&back).unwrap().query().unwrap().to_string();
    let setup = started.elapsed();

    // What the stack holds before the table.
    let items_before = env.dynamo_items().await.unwrap();
    let secrets_before = env.secrets_changed().await.unwrap();
    let sf_before = env.sf_stats().await.unwrap();
    let contacts_before = env.sf_records("Contact").await.unwrap().len();
    assert!(!items_before.keys().any(|k| k.contains("OAUTH#")), "no state pending: {items_before:#?}");
    let depths = env.queue_depths().await.unwrap();
    assert_eq!(depths.len(), 4, "{depths:?}");
    assert!(depths.values().all(|n| *n == 0), "{depths:?}");

    let expired = start_state(&env).await;
    let expired_at = Instant::now();
    let mut families: Vec<(&str, Vec<Case>)> = vec![
        ("webhooks", webhook_cases()),
        ("admin API", admin_cases(&env)),
        ("health", health_cases(&env)),
        ("OAuth", oauth_cases()),
    ];
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    let table = Instant::now();
    for (family, cases) in &mut families {
        counts.push((*family, cases.len()));
        for c in cases.iter_mut() {
            if c.path.contains("{EXPIRED}") {
                let wait = Duration::from_millis(STATE_TTL_SECS * 1000 + 1500).saturating_sub(expired_at.elapsed());
                tokio::time::sleep(wait).await;
                c.path = c.path.replace("{EXPIRED}", &expired);
            }
            if c.path.contains("{STATE}") {
                c.path = c.path.replace("{STATE}", &start_state(&env).await);
            }
            c.path = c.path.replace("{REPLAY}", &replay);
            let r = raw_request(&env.endpoints.api_url, c.method, &c.path, &c.headers, &c.body).await.unwrap();
            if let Err(e) = check(c, &r) {
                failures.push(e);
            }
        }
    }
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    println!("cases per endpoint family: {counts:?}, total {total}; table ran in {:?}", table.elapsed());
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));

    // The same requests well formed pass (the scheme is case-insensitive, RFC 7235).
    for scheme in ["Bearer", "bearer"] {
        let h = [("authorization", format!("{scheme} {}", env.admin_token))];
        let r = raw_request(&env.endpoints.api_url, "GET", "/admin/tenants/acme/config", &h, b"").await.unwrap();
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
        let r = raw_request(&env.endpoints.api_url, "GET", "/health/acme", &h, b"").await.unwrap();
        assert_eq!((r.status, r.json()["tenant"].clone()), (200, json!("acme")), "{scheme}: {}", r.text());
    }

    // Nothing was enqueued: every queue and DLQ empty, the worker never ran.
    let depths = env.queue_depths().await.unwrap();
    assert!(depths.values().all(|n| *n == 0), "{depths:?}");
    let stats = env.runtime("stats").await.unwrap();
    assert_eq!(stats["functions"]["SyncWorkerFunction"]["invocations"], 0, "{stats}");
    // Nothing reached Salesforce's data.
    let sf_after = env.sf_stats().await.unwrap();
    assert_eq!(sf_after["records_written"], sf_before["records_written"], "{sf_after}");
    assert_eq!(sf_after["by_kind"]["composite"], sf_before["by_kind"]["composite"], "{sf_after}");
    assert!(env.sf_records("LMS_Enrollment__c").await.unwrap().is_empty());
    assert_eq!(env.sf_records("Contact").await.unwrap().len(), contacts_before);
    // Nothing was stored: DynamoDB and Secrets Manager are as they were
    // (every state the OAuth cases started was taken by its callback).
    let items_after = env.dynamo_items().await.unwrap();
    let added: Vec<&String> = items_after.keys().filter(|k| !items_before.contains_key(*k)).collect();
    let removed: Vec<&String> = items_before.keys().filter(|k| !items_after.contains_key(*k)).collect();
    let changed: Vec<&String> =
        items_after.iter().filter(|(k, v)| items_before.get(*k).is_some_and(|b| b != *v)).map(|(k, _)| k).collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "DynamoDB changed: added {added:#?}, removed {removed:#?}, changed {changed:#?}"
    );
    assert_eq!(env.secrets_changed().await.unwrap(), secrets_before);
    assert!(env.stored_tokens("acme").await.is_err(), "acme was never connected");
    assert_eq!(env.status("acme").await.unwrap()["cause"], "never_connected");
    let (_, tenants) = env.admin(reqwest::Method::GET, "/admin/tenants", None).await.unwrap();
    let ids: Vec<&str> = tenants["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "conn", "imp", "withlms"]);
    assert!(tenants["tenants"].as_array().unwrap().iter().all(|t| t["version"] == 1), "{tenants}");
    println!(
        "setup {setup:?}, whole test {:?}; {} DynamoDB items and {} secrets unchanged",
        started.elapsed(),
        items_after.len(),
        secrets_before.len()
    );
}
