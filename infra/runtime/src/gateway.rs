//! The HTTP gateway: API Gateway HTTP API routes from the template, invoked
//! with payload format 2.0; plus the local runtime's control API under
//! `/__local/` (wiring, statistics, firing schedules, direct invocation).

use crate::events::{HttpIn, gateway_error, http_request_event, http_response, match_route, scheduled_event};
use crate::lambda::{FunctionHost, InvokeError};
use crate::pollers::SourceStats;
use crate::wiring::{HttpRoute, Wiring};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// HTTP API's payload limit.
const MAX_REQUEST: usize = 10 * 1024 * 1024;
/// HTTP API's integration timeout.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Gateway {
    pub wiring: Wiring,
    pub hosts: Vec<Arc<FunctionHost>>,
    /// (route, index into hosts)
    pub routes: Vec<(HttpRoute, usize)>,
    pub source_stats: Vec<Arc<Mutex<SourceStats>>>,
}

impl Gateway {
    fn host(&self, logical_id: &str) -> Option<&Arc<FunctionHost>> {
        self.hosts.iter().find(|h| h.spec.logical_id == logical_id || h.spec.binary == logical_id)
    }
}

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/__local/health", get(|| async { axum::Json(json!({"ok": true})) }))
        .route("/__local/wiring", get(wiring))
        .route("/__local/stats", get(stats))
        .route("/__local/functions/{function}/invoke", post(invoke))
        .route("/__local/functions/{function}/kill", post(kill))
        .route("/__local/schedules/{function}/{event}/fire", post(fire))
        .fallback(api)
        .layer(DefaultBodyLimit::max(MAX_REQUEST + 1))
        .with_state(gw)
}

async fn wiring(State(gw): State<Arc<Gateway>>) -> Response {
    axum::Json(&gw.wiring).into_response()
}

async fn stats(State(gw): State<Arc<Gateway>>) -> Response {
    let functions: serde_json::Map<String, Value> =
        gw.hosts.iter().map(|h| (h.spec.logical_id.clone(), json!(h.stats()))).collect();
    let sources: Vec<Value> =
        gw.source_stats.iter().map(|s| json!(s.lock().unwrap_or_else(|p| p.into_inner()).clone())).collect();
    axum::Json(json!({"functions": functions, "event_sources": sources})).into_response()
}

fn invoke_error_json(e: &InvokeError) -> Value {
    json!({"error": e.to_string()})
}

async fn invoke(State(gw): State<Arc<Gateway>>, Path(function): Path<String>, body: Bytes) -> Response {
    let Some(host) = gw.host(&function).cloned() else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no function {function}")})))
            .into_response();
    };
    match host.invoke(body).await {
        Ok(out) => ([(axum::http::header::CONTENT_TYPE, "application/json")], out).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, axum::Json(invoke_error_json(&e))).into_response(),
    }
}

async fn kill(State(gw): State<Arc<Gateway>>, Path(function): Path<String>) -> Response {
    let Some(host) = gw.host(&function) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no function {function}")})))
            .into_response();
    };
    axum::Json(json!({"killed": host.kill_all()})).into_response()
}

#[derive(serde::Deserialize)]
struct FireQuery {
    /// The event's `time` (RFC 3339): fire as if the schedule ran then.
    time: Option<String>,
}

async fn fire(
    State(gw): State<Arc<Gateway>>,
    Path((function, event)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<FireQuery>,
) -> Response {
    let Some(host) = gw.host(&function).cloned() else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no function {function}")})))
            .into_response();
    };
    let Some(s) = host.spec.schedules.iter().find(|s| s.event == event).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("{function} has no schedule event {event}")})),
        )
            .into_response();
    };
    let at = match q.time.as_deref() {
        None => time::OffsetDateTime::now_utc(),
        Some(t) => match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
            Ok(t) => t,
            Err(_) => {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "time must be RFC 3339"})))
                    .into_response();
            }
        },
    };
    let ev = scheduled_event(&s, &gw.wiring.region, at);
    match host.invoke(Bytes::from(ev.to_string())).await {
        Ok(out) => {
            let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
            axum::Json(json!({"event": ev, "result": v})).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, axum::Json(invoke_error_json(&e))).into_response(),
    }
}

fn to_response(out: crate::events::HttpOut) -> Response {
    let mut resp = Response::new(Body::from(out.body));
    *resp.status_mut() = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in out.headers {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

async fn api(State(gw): State<Arc<Gateway>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => return to_response(gateway_error(413, "Request Entity Too Large")),
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let routes: Vec<HttpRoute> = gw.routes.iter().map(|(r, _)| r.clone()).collect();
    let Some(m) = match_route(&routes, &method, &path) else {
        return to_response(gateway_error(404, "Not Found"));
    };
    let Some(idx) = gw.routes.iter().find(|(r, _)| r == m.route).map(|(_, i)| *i) else {
        return to_response(gateway_error(404, "Not Found"));
    };
    let host = gw.hosts[idx].clone();
    let request_id = uuid::Uuid::new_v4().to_string();
    let host_header =
        parts.headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let input = HttpIn {
        method: &method,
        path: &path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip: peer.ip().to_string(),
        host: host_header,
        request_id: request_id.clone(),
        now: time::OffsetDateTime::now_utc(),
    };
    let event = http_request_event(&m, &input);
    let payload = Bytes::from(event.to_string());
    if payload.len() > crate::lambda::MAX_PAYLOAD {
        return to_response(gateway_error(413, "Request Entity Too Large"));
    }
    let mut resp = match tokio::time::timeout(INTEGRATION_TIMEOUT, host.invoke(payload)).await {
        Err(_) => to_response(gateway_error(503, "Service Unavailable")),
        Ok(Err(e)) => {
            tracing::warn!(function = %host.spec.name, error = %e, "HTTP invocation failed");
            to_response(gateway_error(500, "Internal Server Error"))
        }
        Ok(Ok(out)) => to_response(http_response(&out)),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("apigw-requestid", v);
    }
    resp
}
