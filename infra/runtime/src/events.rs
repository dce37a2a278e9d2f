//! The Lambda event JSON the local runtime delivers, shaped as AWS delivers
//! it: API Gateway HTTP API (payload format 2.0) requests and responses, SQS
//! event source mapping batches, EventBridge scheduled events.

use crate::wiring::{HttpRoute, ScheduleSpec, SqsSource};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A route that matched a request, with its path parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched<'a> {
    pub route: &'a HttpRoute,
    pub params: BTreeMap<String, String>,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Match a request against the routes the way HTTP API selects a route:
/// the most specific path wins (literal segments over `{param}` over
/// `{proxy+}`), then an explicit method over `ANY`.
pub fn match_route<'a>(routes: &'a [HttpRoute], method: &str, path: &str) -> Option<Matched<'a>> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut best: Option<((usize, usize, usize, bool), Matched<'a>)> = None;
    for r in routes {
        if r.method != "ANY" && !r.method.eq_ignore_ascii_case(method) {
            continue;
        }
        let rsegs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        let mut params = BTreeMap::new();
        let (mut literal, mut param, mut greedy) = (0usize, 0usize, 0usize);
        let mut ok = true;
        for (i, rs) in rsegs.iter().enumerate() {
            if rs.starts_with('{') && rs.ends_with("+}") {
                let rest = segs.get(i..).map(|s| s.join("/")).unwrap_or_default();
                if rest.is_empty() {
                    ok = false;
                    break;
                }
                params.insert(rs[1..rs.len() - 2].to_string(), decode(&rest));
                greedy = 1;
                break;
            }
            let Some(s) = segs.get(i) else {
                ok = false;
                break;
            };
            if rs.starts_with('{') && rs.ends_with('}') {
                if s.is_empty() {
                    ok = false;
                    break;
                }
                params.insert(rs[1..rs.len() - 1].to_string(), decode(s));
                param += 1;
            } else if rs == s {
                literal += 1;
            } else {
                ok = false;
                break;
            }
        }
        if ok && greedy == 0 && rsegs.len() != segs.len() {
            ok = false;
        }
        if !ok {
            continue;
        }
        // Higher is better: no greedy, more literals, fewer params, explicit method.
        let score = (1 - greedy, literal, usize::MAX - param, r.method != "ANY");
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, Matched { route: r, params }));
        }
    }
    best.map(|(_, m)| m)
}

/// The incoming HTTP request, as the gateway saw it.
pub struct HttpIn<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
    pub host: String,
    pub request_id: String,
    pub now: OffsetDateTime,
}

fn clf_time(t: OffsetDateTime) -> String {
    const M: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        M[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// API Gateway HTTP API request event, payload format 2.0.
pub fn http_request_event(m: &Matched<'_>, req: &HttpIn<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for name in req.headers.keys() {
        let values: Vec<String> =
            req.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        if name == http::header::COOKIE {
            for v in &values {
                cookies.extend(v.split("; ").filter(|c| !c.is_empty()).map(|c| Value::String(c.to_string())));
            }
            continue;
        }
        headers.insert(name.as_str().to_string(), Value::String(values.join(",")));
    }
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in req.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.entry(decode(&k.replace('+', " "))).or_default().push(decode(&v.replace('+', " ")));
    }
    let route_key = m.route.route_key();
    let user_agent = req.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut ev = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::wiring::ACCOUNT_ID,
            "apiId": "local",
            "domainName": req.host,
            "domainPrefix": req.host.split('.').next().unwrap_or(""),
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip,
                "userAgent": user_agent,
            },
            "requestId": req.request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": clf_time(req.now),
            "timeEpoch": (req.now.unix_timestamp_nanos() / 1_000_000) as i64,
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        ev["cookies"] = Value::Array(cookies);
    }
    if !query.is_empty() {
        ev["queryStringParameters"] =
            Value::Object(query.into_iter().map(|(k, v)| (k, Value::String(v.join(",")))).collect());
    }
    if !m.params.is_empty() {
        ev["pathParameters"] =
            Value::Object(m.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
    }
    if !req.body.is_empty() {
        match std::str::from_utf8(req.body) {
            Ok(text) => ev["body"] = Value::String(text.to_string()),
            Err(_) => {
                ev["body"] = Value::String(base64::engine::general_purpose::STANDARD.encode(req.body));
                ev["isBase64Encoded"] = Value::Bool(true);
            }
        }
    }
    ev
}

/// An HTTP answer from a function's payload (format 2.0 rules: an object with
/// `statusCode` is a full response; any other JSON is a 200 JSON body).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOut {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn http_response(payload: &[u8]) -> HttpOut {
    let v: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(_) => return gateway_error(500, "Internal Server Error"),
    };
    let Some(status) = v.get("statusCode").and_then(Value::as_u64) else {
        return HttpOut {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: payload.to_vec(),
        };
    };
    let mut headers = Vec::new();
    if let Some(h) = v.get("headers").and_then(Value::as_object) {
        for (k, val) in h {
            headers.push((k.to_lowercase(), crate::template::scalar(val)));
        }
    }
    if let Some(h) = v.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vals) in h {
            for val in vals.as_array().into_iter().flatten() {
                headers.push((k.to_lowercase(), crate::template::scalar(val)));
            }
        }
    }
    for c in v.get("cookies").and_then(Value::as_array).into_iter().flatten() {
        headers.push(("set-cookie".into(), crate::template::scalar(c)));
    }
    let text = v.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if v.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(b) => b,
            Err(_) => return gateway_error(500, "Internal Server Error"),
        }
    } else {
        text.as_bytes().to_vec()
    };
    HttpOut { status: status as u16, headers, body }
}

/// The gateway's own answers (`{"message": ...}` as API Gateway sends them).
pub fn gateway_error(status: u16, message: &str) -> HttpOut {
    HttpOut {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({"message": message}).to_string().into_bytes(),
    }
}

/// One received SQS message.
#[derive(Debug, Clone)]
pub struct SqsIn {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub message_attributes: Value,
    pub md5_of_body: String,
}

/// An SQS event source mapping batch.
pub fn sqs_event(src: &SqsSource, region: &str, msgs: &[SqsIn]) -> Value {
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": m.attributes,
                "messageAttributes": m.message_attributes,
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": src.queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({"Records": records})
}

/// Which messages of a batch failed, from the function's answer. With
/// `ReportBatchItemFailures`, an unreadable answer or an identifier that is
/// empty or not in the batch fails the whole batch, as in AWS.
pub fn failed_items(src: &SqsSource, payload: &[u8], batch: &[SqsIn]) -> Vec<String> {
    let all = || batch.iter().map(|m| m.message_id.clone()).collect();
    if !src.report_batch_item_failures {
        return Vec::new();
    }
    if payload.is_empty() || payload == b"null" {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else { return all() };
    let Some(list) = v.get("batchItemFailures") else { return Vec::new() };
    let Some(list) = list.as_array() else { return all() };
    let mut out = Vec::new();
    for f in list {
        match f.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && batch.iter().any(|m| m.message_id == id) => out.push(id.to_string()),
            _ => return all(),
        }
    }
    out
}

/// An EventBridge scheduled event (or the rule's constant `Input`).
pub fn scheduled_event(s: &ScheduleSpec, region: &str, now: OffsetDateTime) -> Value {
    if let Some(input) = &s.input {
        return input.clone();
    }
    let t = now.replace_nanosecond(0).unwrap_or(now);
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": crate::wiring::ACCOUNT_ID,
        "time": t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{}:rule/{}", crate::wiring::ACCOUNT_ID, s.rule_name)],
        "detail": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(m: &str, p: &str) -> HttpRoute {
        HttpRoute { event: "E".into(), method: m.into(), path: p.into(), iam_auth: false }
    }

    #[test]
    fn route_selection_prefers_the_most_specific() {
        let routes = vec![
            route("POST", "/webhooks/{tenant}/{source}"),
            route("ANY", "/admin/{proxy+}"),
            route("GET", "/admin/tenants"),
            route("GET", "/health/{tenant}"),
        ];
        let m = match_route(&routes, "POST", "/webhooks/acme/lms").unwrap();
        assert_eq!(m.params["tenant"], "acme");
        assert_eq!(m.params["source"], "lms");
        assert!(match_route(&routes, "GET", "/webhooks/acme/lms").is_none());
        assert!(match_route(&routes, "POST", "/webhooks/acme").is_none());
        assert!(match_route(&routes, "POST", "/webhooks/acme/lms/x").is_none());
        assert_eq!(match_route(&routes, "GET", "/admin/tenants").unwrap().route.path, "/admin/tenants");
        let m = match_route(&routes, "DELETE", "/admin/tenants/acme").unwrap();
        assert_eq!(m.params["proxy"], "tenants/acme");
        assert_eq!(match_route(&routes, "GET", "/health/a%20b").unwrap().params["tenant"], "a b");
    }

    #[test]
    fn failed_items_follow_aws_rules() {
        let src = SqsSource {
            event: "E".into(),
            queue_logical_id: "Q".into(),
            queue_arn: "arn".into(),
            queue_url: "url".into(),
            batch_size: 10,
            window_secs: 0,
            report_batch_item_failures: true,
            enabled: true,
            max_concurrency: None,
        };
        let m = |id: &str| SqsIn {
            message_id: id.into(),
            receipt_handle: "r".into(),
            body: "b".into(),
            attributes: BTreeMap::new(),
            message_attributes: json!({}),
            md5_of_body: "x".into(),
        };
        let batch = vec![m("a"), m("b")];
        assert_eq!(failed_items(&src, br#"{"batchItemFailures":[]}"#, &batch), Vec::<String>::new());
        assert_eq!(failed_items(&src, br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch), vec!["b"]);
        assert_eq!(failed_items(&src, br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#, &batch), vec!["a", "b"]);
        assert_eq!(failed_items(&src, br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &batch), vec!["a", "b"]);
        assert_eq!(failed_items(&src, b"garbage", &batch), vec!["a", "b"]);
        let no_report = SqsSource { report_batch_item_failures: false, ..src };
        assert!(failed_items(&no_report, br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch).is_empty());
    }

    #[test]
    fn responses_follow_payload_format_2() {
        let r = http_response(br#"{"statusCode":202,"headers":{"Content-Type":"application/json"},"body":"{\"ok\":1}","cookies":["a=b"]}"#);
        assert_eq!(r.status, 202);
        assert!(r.headers.contains(&("set-cookie".into(), "a=b".into())));
        assert_eq!(r.body, br#"{"ok":1}"#);
        let r = http_response(br#"{"hello":"world"}"#);
        assert_eq!((r.status, r.body.as_slice()), (200, br#"{"hello":"world"}"#.as_slice()));
        assert_eq!(http_response(b"not json").status, 500);
        let r = http_response(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#);
        assert_eq!(r.body, b"hi");
    }
}
